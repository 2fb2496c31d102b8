"""The pipeline file (docs/design.md §14): its model, and each step as bridge variables.

A step is turned into exactly the variables of docs/design.md §3 that ``pipeline env``
prints, and those are validated by ``bridge.settings`` itself: one source of truth, so a
pipeline runs nothing a hand-written env file could not. Every problem of a file is
reported at once, each with its path in the file (``steps[1].on.key: invalid regular
expression …``).

Pure apart from reading the file (and the jq filter files it names, as the bridge would).
PyYAML is imported here only, so the other modes start without it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.settings import VARIABLES, Settings, field_problems

NAME = r"^[a-z][a-z0-9-]{0,39}$"
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# S3 event types a queue notification can subscribe to, as they appear in records
# (without "s3:"); MATCH_EVENTS is matched against these names.
S3_EVENT_NAMES = (
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Post",
    "ObjectRestore:Completed",
    "ObjectRestore:Delete",
    "ObjectTagging:Put",
    "ObjectTagging:Delete",
    "ObjectAcl:Put",
    "LifecycleExpiration:Delete",
    "LifecycleExpiration:DeleteMarkerCreated",
    "LifecycleTransition",
    "IntelligentTiering",
    "ReducedRedundancyLostObject",
)
# Event types a notification can name with a wildcard (s3:ObjectCreated:*).
_WILDCARD_FAMILIES = (
    "ObjectCreated",
    "ObjectRemoved",
    "ObjectRestore",
    "ObjectTagging",
    "LifecycleExpiration",
)
# How the bridge's own uploads show up: the events that can chain one step to the next.
UPLOAD_EVENT_NAMES = ("ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload")

# Variables a step's own keys set; `env` may not set them too.
_OWNED = {
    "HANDLER_COMMAND": "run",
    "MATCH_KEY": "on.key",
    "MATCH_EVENTS": "on.events",
    "PULL_SCOPE": "pull.scope",
    "PULL_PARENT_DIRS": "pull.parent_dirs",
    "PULL_MATCH_KEYS": "pull.keys",
    "EXECUTION_FILTER_EXPR": "filter",
    "EXECUTION_FILTER_FILE": "filter.file",
    "TARGET_BUCKET": "to",
    "HANDLER_TIMEOUT": "timeout",
    "ON_DELETE": "on_delete",
    "LINEAGE": "lineage",
    "STEP_NAME": "name",
}
# The removal events a step with `on_delete: remove-outputs` must receive.
REMOVAL_EVENT_NAMES = ("ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated")


class PipelineError(Exception):
    """The pipeline file is invalid; ``problems`` lists one ``path: reason`` per issue."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: invalid pipeline: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    """``on``: the bucket notification (bucket, prefix, suffix) and the bridge's selection."""

    bucket: Annotated[str, Field(pattern=BUCKET)]
    prefix: str = ""
    suffix: str = ""
    key: str | None = None
    events: str | None = None


class Pull(_Strict):
    """``pull``: PULL_SCOPE, PULL_PARENT_DIRS, PULL_MATCH_KEYS."""

    scope: Literal["prefix", "events"] | None = None
    parent_dirs: int | None = None
    keys: list[str] | None = None

    @field_validator("keys", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Filter(_Strict):
    """``filter``: a jq program (EXECUTION_FILTER_EXPR) or a file (EXECUTION_FILTER_FILE)."""

    expr: str | None = None
    file: str | None = None


class Step(_Strict):
    """One step: a handler run on a bucket's events, writing to a bucket."""

    name: Annotated[str, Field(pattern=NAME)]
    run: str
    workdir: str | None = None
    on: Trigger
    pull: Pull = Pull()
    filter: Filter | None = None
    outputs: list[str] | None = None
    to: Annotated[str, Field(pattern=BUCKET)] | None = None
    env: dict[str, str] = {}
    timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    workers: Annotated[int, Field(ge=1, le=256)] = 1
    loop: Literal["allowed"] | None = None
    on_delete: Literal["keep", "remove-outputs"] = "keep"  # ON_DELETE
    lineage: Literal["on", "off"] = "on"  # LINEAGE: on in pipelines, for `pipeline status`

    @field_validator("run", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(part, str) for part in value):
            return shlex.join(value)
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return {"expr": value} if isinstance(value, str) else value

    @field_validator("env", mode="before")
    @classmethod
    def _scalars(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            key: ("true" if item else "false") if isinstance(item, bool) else _scalar(item)
            for key, item in value.items()
        }


def _scalar(item: Any) -> Any:
    return str(item) if isinstance(item, int | float) else item


class PipelineSpec(_Strict):
    """The whole file."""

    pipeline: Annotated[str, Field(pattern=NAME)]
    buckets: Annotated[list[Annotated[str, Field(pattern=BUCKET)]], Field(min_length=1)]
    steps: Annotated[list[Step], Field(min_length=1)]


@dataclass(frozen=True)
class StepConfig:
    """A validated step: the file's view, its bridge variables and the bridge's settings."""

    spec: Step
    index: int
    variables: dict[str, str]
    settings: Settings
    workdir: Path

    @property
    def name(self) -> str:
        """The step's name."""
        return self.spec.name

    @property
    def path(self) -> str:
        """Where the step is in the file, for messages: ``steps[1]``."""
        return f"steps[{self.index}]"

    @property
    def target(self) -> str:
        """The bucket receiving the outputs."""
        return self.spec.to or self.spec.on.bucket

    @property
    def scope(self) -> str:
        """PULL_SCOPE: ``prefix`` (list and pull the group prefix) or ``events``."""
        return self.settings.pull_scope

    @property
    def notification_events(self) -> tuple[str, ...]:
        """The S3 event names the step's notification must carry (those MATCH_EVENTS keeps;
        creations only when ``on.events`` is not given)."""
        pattern = self.settings.match_events
        if pattern is None:
            removals = REMOVAL_EVENT_NAMES if self.settings.removes_outputs else ()
            return tuple(
                n for n in S3_EVENT_NAMES if n.startswith("ObjectCreated:") or n in removals
            )
        return tuple(n for n in S3_EVENT_NAMES if pattern.search(n))


def s3_event_types(names: tuple[str, ...]) -> list[str]:
    """Notification event types for event names: ``s3:ObjectCreated:*`` for a whole family."""
    types = []
    for name in names:
        family = name.partition(":")[0]
        whole = [n for n in S3_EVENT_NAMES if n.startswith(family + ":")]
        if family in _WILDCARD_FAMILIES and all(n in names for n in whole):
            wildcard = f"s3:{family}:*"
            if wildcard not in types:
                types.append(wildcard)
        else:
            types.append(f"s3:{name}")
    return types


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file."""

    name: str
    buckets: tuple[str, ...]
    steps: tuple[StepConfig, ...]
    source: Path

    def step(self, name: str) -> StepConfig:
        """The step called ``name``; KeyError naming the known steps otherwise."""
        for step in self.steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self.steps)
        raise KeyError(f"no step {name!r} in pipeline {self.name!r} (steps: {known})")

    @property
    def all_buckets(self) -> tuple[str, ...]:
        """The owned buckets, then the other target buckets the steps write to."""
        extra = [s.target for s in self.steps if s.target not in self.buckets]
        return self.buckets + tuple(dict.fromkeys(extra))


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; ``PipelineError`` lists every problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(str(source), [f"cannot read the file: {exc}"]) from None
    document = parse_yaml(text, str(source))
    return build_pipeline(document, source)


def parse_yaml(text: str, source: str) -> Any:
    """YAML 1.2-style booleans (``on``/``yes`` stay strings); duplicate keys are errors."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
    )

    def mapping(loader: Loader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
                )
            seen[key] = loader.construct_object(value_node, deep=True)
        return seen

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PipelineError(source, [f"not valid YAML: {exc}".replace("\n", " ")]) from None


def build_pipeline(document: Any, source: Path) -> Pipeline:
    """Validate a parsed document: the shape first, then each step through the settings."""
    try:
        spec = PipelineSpec.model_validate(document)
    except ValidationError as exc:
        raise PipelineError(str(source), _all_problems(document, exc, source.parent)) from None
    problems: list[str] = []
    steps = []
    for index, step in enumerate(spec.steps):
        config = _step_config(step, index, spec.buckets, source.parent, problems)
        if config is not None:
            steps.append(config)
    problems.extend(_naming_problems(spec))
    if problems:
        raise PipelineError(str(source), problems)
    return Pipeline(spec.pipeline, tuple(spec.buckets), tuple(steps), source)


def _all_problems(document: Any, error: ValidationError, base: Path) -> list[str]:
    """The shape problems, and those of every step whose own shape is sound: a shape error
    in one step does not hide a bad regex in another."""
    problems = [_shape_problem(item) for item in error.errors()]
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        return problems
    broken = {
        item["loc"][1]
        for item in error.errors()
        if len(item["loc"]) > 1 and item["loc"][0] == "steps" and isinstance(item["loc"][1], int)
    }
    buckets = document.get("buckets")
    owned = (
        buckets if isinstance(buckets, list) and all(isinstance(b, str) for b in buckets) else None
    )
    for index, raw in enumerate(document["steps"]):
        if index not in broken:
            step = Step.model_validate(raw)  # its shape raised no error above
            _step_config(step, index, owned, base, problems)
    return problems


def _shape_problem(item: Any) -> str:
    path = ""
    for part in item["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    cause = item.get("ctx", {}).get("error")
    reason = str(cause) if isinstance(cause, Exception) else item["msg"]
    if item["type"] == "string_pattern_mismatch":
        reason = f"{item['input']!r} is not a valid name (pattern {item['ctx']['pattern']})"
    return f"{path or 'file'}: {reason}"


def step_variables(step: Step) -> dict[str, str]:
    """The step's bridge variables (docs/design.md §3) and its handler's extra variables,
    exactly as ``pipeline env`` prints them."""
    values: dict[str, str] = {"HANDLER_COMMAND": step.run}
    if step.on.key is not None:
        values["MATCH_KEY"] = step.on.key
    if step.on.events is not None:
        values["MATCH_EVENTS"] = step.on.events
    if step.pull.scope is not None:
        values["PULL_SCOPE"] = step.pull.scope
    if step.pull.parent_dirs is not None:
        values["PULL_PARENT_DIRS"] = str(step.pull.parent_dirs)
    if step.pull.keys is not None:
        values["PULL_MATCH_KEYS"] = ",".join(step.pull.keys)
    if step.filter is not None and step.filter.expr is not None:
        values["EXECUTION_FILTER_EXPR"] = step.filter.expr
    if step.filter is not None and step.filter.file is not None:
        values["EXECUTION_FILTER_FILE"] = step.filter.file
    if step.to is not None:
        values["TARGET_BUCKET"] = step.to
    if step.timeout is not None:
        values["HANDLER_TIMEOUT"] = f"{step.timeout:g}"
    if step.on_delete != "keep":
        values["ON_DELETE"] = step.on_delete
    values["LINEAGE"] = step.lineage
    values["STEP_NAME"] = step.name
    # A variable the step sets with its own key is not taken from `env` (an error anyway).
    values.update({name: value for name, value in step.env.items() if name not in _OWNED})
    return values


def _step_config(
    step: Step, index: int, buckets: Sequence[str] | None, base: Path, problems: list[str]
) -> StepConfig | None:
    """Validate one step through the settings model; None (and ``problems`` added) if bad.
    ``buckets``: the pipeline's, or None when they are themselves invalid."""
    where = f"steps[{index}]"
    before = len(problems)
    if buckets is not None and step.on.bucket not in buckets:
        problems.append(
            f"{where}.on.bucket: {step.on.bucket!r} is not one of the pipeline's buckets "
            "(a notification can only be added to a bucket the pipeline owns)"
        )
    for name in step.env:
        if name in _OWNED:
            problems.append(f"{where}.env.{name}: set by the step's {_OWNED[name]!r} instead")
        elif not _ENV_NAME.fullmatch(name):
            problems.append(f"{where}.env.{name}: not a valid environment variable name")
    for position, pattern in enumerate(step.pull.keys or []):
        if "," in pattern:
            problems.append(
                f"{where}.pull.keys[{position}]: contains a comma, which PULL_MATCH_KEYS "
                "uses to separate regexes; use [,] or \\x2c"
            )
    if step.filter is not None and (step.filter.expr is None) == (step.filter.file is None):
        problems.append(f"{where}.filter: give exactly one of 'expr' (a jq program) or 'file'")
    if not step.run.strip():
        problems.append(f"{where}.run: the handler command is empty")
    for position, output in enumerate(step.outputs or []):
        parts = output.split("/")
        if output.startswith("/") or ".." in parts or not output:
            problems.append(
                f"{where}.outputs[{position}]: {output!r} must be a path relative to the "
                "group prefix (no leading '/', no '..')"
            )
    workdir = (base / step.workdir) if step.workdir else base
    if not workdir.is_dir():
        problems.append(f"{where}.workdir: {str(workdir)!r} is not a folder")
    variables = step_variables(step)
    for name, value in variables.items():
        if "\n" in value or value != value.rstrip():
            problems.append(
                f"{where}.{_OWNED.get(name, 'env.' + name)}: a value with a line break or "
                "trailing spaces cannot be written to an env file"
            )
    settings = _validate_settings(variables, workdir, where, problems)
    if step.on.events is not None and not _matches_an_event(step.on.events):
        problems.append(
            f"{where}.on.events: {step.on.events!r} matches no S3 event type "
            "(e.g. ObjectCreated:Put)"
        )
    elif (
        step.on_delete == "remove-outputs"
        and step.on.events is not None
        and not _matches_an_event(step.on.events, REMOVAL_EVENT_NAMES)
    ):
        problems.append(
            f"{where}.on_delete: remove-outputs needs on.events to match "
            f"ObjectRemoved:Delete, and {step.on.events!r} does not (e.g. "
            "'^Object(Created|Removed):')"
        )
    if settings is None or len(problems) > before:
        return None
    return StepConfig(step, index, variables, settings, workdir)


def _matches_an_event(pattern: str, names: Sequence[str] = S3_EVENT_NAMES) -> bool:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return True  # reported by the settings validation
    return any(compiled.search(name) for name in names)


def _validate_settings(
    variables: dict[str, str], workdir: Path, where: str, problems: list[str]
) -> Settings | None:
    """The bridge's own validation of the variables, as if run in ``workdir``."""
    fields = {
        name.lower(): value
        for name, value in variables.items()
        if name in VARIABLES and value.strip()
    }
    if "execution_filter_file" in fields:
        fields["execution_filter_file"] = str(workdir / fields["execution_filter_file"])
    try:
        return Settings.model_validate(fields)
    except ValidationError as exc:
        for variable, reason in field_problems(exc):
            place = _OWNED.get(variable, f"env.{variable}")
            problems.append(f"{where}.{place}: {reason}")
        return None


def logical_id(name: str) -> str:
    """``word-count`` -> ``WordCount``: a CloudFormation logical id part."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-.]", name))


def _naming_problems(spec: PipelineSpec) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    ids: dict[str, str] = {}
    for index, step in enumerate(spec.steps):
        if step.name in seen:
            problems.append(
                f"steps[{index}].name: {step.name!r} is already the name of "
                f"steps[{seen[step.name]}]"
            )
            continue
        seen[step.name] = index
        other = ids.setdefault(logical_id(step.name), step.name)
        if other != step.name:
            problems.append(
                f"steps[{index}].name: {step.name!r} gives the same resource names as {other!r}"
            )
        if len(f"{spec.pipeline}-{step.name}-dlq") > 80:
            problems.append(
                f"steps[{index}].name: queue name {spec.pipeline}-{step.name}-dlq is longer "
                "than SQS allows (80)"
            )
    buckets: dict[str, str] = {}
    for index, bucket in enumerate(spec.buckets):
        other = buckets.setdefault(logical_id(bucket), bucket)
        if other != bucket:
            problems.append(
                f"buckets[{index}]: {bucket!r} is listed twice or clashes with {other!r}"
            )
    return problems
