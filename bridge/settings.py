"""Configuration from environment variables (docs/design.md §3), validated together at start-up.

Every problem is collected and reported at once as ``VARIABLE: reason``; regexes and the
jq program are compiled here, so a bad one never reaches an event.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.hints import event_name_hint, glob_as_regex, glob_hint, looks_like_glob, near_miss
from bridge.jqfilter import ExecutionFilter, FilterCompileError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# STEP_NAME is a part of S3 keys (the lineage records): short, and plain.
STEP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
LAMBDA_FUNCTION_VAR = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda in every execution environment
# Set by Lambda from the function's application log level (JSON log format only).
LAMBDA_LOG_LEVEL_VAR = "AWS_LAMBDA_LOG_LEVEL"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
_LAMBDA_LOG_LEVELS: dict[str, LogLevel] = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "ERROR",
}


class ConfigurationError(Exception):
    """The configuration is invalid; ``problems`` lists one ``VARIABLE: reason`` per issue."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration: " + "; ".join(problems))
        self.problems = problems


def _compile_regex(value: object) -> re.Pattern[str] | None:
    # pydantic-settings validates defaults too, so None arrives here.
    if value is None or isinstance(value, re.Pattern):
        return value
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}{glob_hint(str(value))}") from exc


def _compile_regex_list(value: object) -> tuple[re.Pattern[str], ...]:
    """Comma-separated regexes (a list or tuple is accepted too, for programmatic use)."""
    parts = value if isinstance(value, tuple | list) else str(value).split(",")
    patterns = []
    for part in parts:
        if isinstance(part, re.Pattern):
            patterns.append(part)
        elif str(part).strip():
            try:
                patterns.append(re.compile(str(part).strip()))
            except re.error as exc:
                text = part.strip()
                raise ValueError(
                    f"invalid regular expression {text!r}: {exc}{glob_hint(text)}"
                ) from exc
    return tuple(patterns)


def _split_command(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return value
    try:
        return tuple(shlex.split(str(value)))
    except ValueError as exc:
        raise ValueError(f"cannot split command line: {exc}") from exc


def _env_name(value: object) -> str:
    name = str(value)
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return name


Regex = Annotated[re.Pattern[str] | None, PlainValidator(_compile_regex)]
# NoDecode: these are not JSON; pydantic-settings would otherwise json.loads() a tuple's value.
RegexList = Annotated[tuple[re.Pattern[str], ...], NoDecode, PlainValidator(_compile_regex_list)]
Command = Annotated[tuple[str, ...], NoDecode, PlainValidator(_split_command)]
EnvName = Annotated[str, PlainValidator(_env_name)]


class Settings(BaseSettings):
    """The bridge's configuration; field ``x`` is read from environment variable ``X``."""

    # An empty variable counts as unset, as most shells and Lambda consoles treat it.
    # defer_build: the validators are built on first use, not when a module imports this one
    # for its names (VARIABLES); the start-up of every mode pays for them once.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", env_ignore_empty=True, defer_build=True
    )

    match_key: Regex = None
    match_events: Regex = None
    pull_parent_dirs: int = 0
    pull_match_keys: RegexList = ()
    pull_scope: Literal["prefix", "events"] = "prefix"
    execution_filter_expr: str | None = None
    execution_filter_file: Path | None = None
    # Read and compiled once from the two variables above, which are validated before it
    # (fields are validated in order); not itself a variable.
    execution_filter: ExecutionFilter | None = Field(
        default=None, exclude=True, validate_default=True
    )
    target_bucket: str | None = None
    handler_command: Command = ()
    root_folder_var: EnvName = "ROOT_FOLDER"
    bucket_var: EnvName = "BUCKET"
    key_prefix_var: EnvName = "KEY_PREFIX"
    handler_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    transfer_concurrency: int = Field(default=16, ge=1, le=1000)
    group_concurrency: int = Field(default=1, ge=1, le=100)
    skip_unchanged: bool = True
    max_chain_depth: int = Field(default=16, ge=0)
    on_delete: Literal["keep", "remove-outputs"] = "keep"
    # Unset: on exactly when ON_DELETE=remove-outputs, which needs the records.
    lineage: Literal["on", "off"] | None = None
    step_name: Annotated[str, Field(pattern=STEP_NAME_PATTERN)] = "default"
    log_format: Literal["text", "json"] = Field(
        default_factory=lambda: (
            "json" if os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "text"
        )
    )
    log_level: LogLevel = Field(
        default_factory=lambda: _LAMBDA_LOG_LEVELS.get(
            os.environ.get(LAMBDA_LOG_LEVEL_VAR, "").strip().upper(), "INFO"
        )
    )
    # On by default under Lambda only: docs/design.md §3 says why.
    metrics: Literal["emf", "off"] = Field(
        default_factory=lambda: "emf" if os.environ.get(LAMBDA_FUNCTION_VAR) else "off"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment variables: no dotenv file, no secrets folder."""
        return init_settings, env_settings

    @field_validator("execution_filter_file")
    @classmethod
    def _check_filter_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("execution_filter_expr") is not None:
            raise ValueError("cannot be used together with EXECUTION_FILTER_EXPR; set only one")
        return value

    @field_validator("execution_filter", mode="plain")
    @classmethod
    def _compile_execution_filter(
        cls, value: object, info: ValidationInfo
    ) -> ExecutionFilter | None:
        program = info.data.get("execution_filter_expr")
        if program is not None:
            return _compile_filter(program, variable="execution_filter_expr")
        path = info.data.get("execution_filter_file")
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise _problem(
                    "execution_filter_file", f"cannot read {str(path)!r}: {exc}"
                ) from exc
            return _compile_filter(text, variable="execution_filter_file")
        return None

    @field_validator("lineage")
    @classmethod
    def _lineage_for_removal(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "off" and info.data.get("on_delete") == "remove-outputs":
            raise ValueError(
                "cannot be off with ON_DELETE=remove-outputs: removing outputs needs the "
                "records of which input made them"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "pull_scope", "metrics", "on_delete", "lineage", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def records_lineage(self) -> bool:
        """Lineage records are written (``LINEAGE``, on by default with remove-outputs)."""
        return self.lineage == "on" or (self.lineage is None and self.removes_outputs)

    @property
    def removes_outputs(self) -> bool:
        """``ON_DELETE=remove-outputs``: outputs follow their inputs' deletion."""
        return self.on_delete == "remove-outputs"

    def target_for(self, source_bucket: str) -> str:
        """The bucket receiving the outputs of a group from ``source_bucket``."""
        return self.target_bucket or source_bucket


# Every configuration variable's name (docs/design.md §3), from the model's fields.
VARIABLES = tuple(name.upper() for name in Settings.model_fields if name != "execution_filter")


# What each variable means when it is unset (``plan`` prints it; docs/design.md §3).
UNSET_MEANING = {
    "MATCH_KEY": "every key matches",
    "MATCH_EVENTS": "every event name matches",
    "PULL_PARENT_DIRS": "0: the object's own folder is the group prefix",
    "PULL_MATCH_KEYS": "every listed object is pulled",
    "PULL_SCOPE": "prefix: pull from the listing of the group prefix",
    "EXECUTION_FILTER_EXPR": "no execution filter: every group runs",
    "EXECUTION_FILTER_FILE": "no execution filter file",
    "TARGET_BUCKET": "outputs go to the group's own bucket",
    "HANDLER_COMMAND": "the handler comes from the command line",
    "ROOT_FOLDER_VAR": "the handler reads ROOT_FOLDER",
    "BUCKET_VAR": "the handler reads BUCKET",
    "KEY_PREFIX_VAR": "the handler reads KEY_PREFIX",
    "HANDLER_TIMEOUT": "no time limit (under Lambda: the invocation deadline)",
    "TRANSFER_CONCURRENCY": "16 parallel transfers per group",
    "GROUP_CONCURRENCY": "1: the groups of one invocation run one after another",
    "SKIP_UNCHANGED": "true: outputs equal to the stored object are not uploaded",
    "MAX_CHAIN_DEPTH": "16: a group triggered by an object of bridge-depth 16 or more fails",
    "LOG_FORMAT": "text (json when AWS_LAMBDA_LOG_FORMAT=JSON)",
    "LOG_LEVEL": "INFO (under Lambda with JSON logs: the function's application log level)",
    "METRICS": "emf under Lambda (AWS_LAMBDA_FUNCTION_NAME set), else off",
    "ON_DELETE": "keep: outputs stay when their input is deleted",
    "LINEAGE": "on with ON_DELETE=remove-outputs, else off: no lineage records written",
    "STEP_NAME": "default: lineage records are filed under the step name 'default'",
}


def unset_meaning(variable: str) -> str:
    """What leaving ``variable`` unset means."""
    if variable in UNSET_MEANING:
        return UNSET_MEANING[variable]
    field = Settings.model_fields.get(variable.lower())
    return f"default {field.default!r}" if field is not None else "not a setting"


# Names a deployment legitimately sets beside the bridge's own: not typos of them.
_NOT_TYPOS = frozenset({"ROOT_FOLDER", "BUCKET", "KEY_PREFIX", "BRIDGE_EVENTS_FILE"})


def configuration_warnings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Mistakes that validate but cannot be what was meant, each as one sentence.

    A variable named almost like one of the bridge's (``MATCH_KYE``: ignored, so the real
    one stays unset), an ``s3:`` prefix in ``MATCH_EVENTS``, a glob where a regex is expected.
    """
    warnings = []
    handler_names = {settings.root_folder_var, settings.bucket_var, settings.key_prefix_var}
    for name in sorted(environ):
        if name.upper() in _NOT_TYPOS or name in handler_names:
            continue
        intended = near_miss(name, VARIABLES)
        if intended is not None:
            state = (
                "is set too"
                if intended in environ
                else (f"is unset: {UNSET_MEANING.get(intended, 'its default applies')}")
            )
            warnings.append(
                f"environment variable {name} is not one of the bridge's: did you mean "
                f"{intended}? ({name} is ignored; {intended} {state})"
            )
    if settings.match_events is not None:
        hint = event_name_hint(settings.match_events.pattern)
        if hint is not None:
            warnings.append(hint)
    removal = "ObjectRemoved:Delete"
    if (
        settings.removes_outputs
        and settings.match_events is not None
        and not settings.match_events.search(removal)
    ):
        warnings.append(
            f"ON_DELETE=remove-outputs, but MATCH_EVENTS {settings.match_events.pattern!r} "
            f"does not match {removal}: deletions are ignored and their outputs stay"
        )
    patterns = [("MATCH_KEY", settings.match_key)] if settings.match_key is not None else []
    patterns += [("PULL_MATCH_KEYS", pattern) for pattern in settings.pull_match_keys]
    for variable, pattern in patterns:
        if looks_like_glob(pattern.pattern):
            warnings.append(
                f"{variable} {pattern.pattern!r} looks like a glob, but it is a regular "
                f"expression (unanchored search): did you mean '{glob_as_regex(pattern.pattern)}'?"
            )
    return warnings


def _problem(variable: str, reason: str) -> PydanticCustomError:
    """A validation problem reported under ``variable`` rather than the failing field."""
    return PydanticCustomError(
        "variable_problem", "{reason}", {"variable": variable, "reason": reason}
    )


def _compile_filter(program: str, variable: str) -> ExecutionFilter:
    try:
        return ExecutionFilter.compile(program)
    except FilterCompileError as exc:
        raise _problem(variable, str(exc)) from exc


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration from the environment.

    Raises ``ConfigurationError`` listing every problem, each naming its variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(error: ValidationError) -> list[str]:
    return [f"{variable}: {reason}" for variable, reason in field_problems(error)]


def field_problems(error: ValidationError) -> list[tuple[str, str]]:
    """``(VARIABLE, reason)`` for each problem of a failed ``Settings`` validation, in the
    order of the variables."""
    problems = []
    for item in error.errors():
        context = item.get("ctx", {})
        location = context.get("variable") or ".".join(str(part) for part in item["loc"])
        variable = location.upper() or "configuration"
        cause = context.get("error")
        reason = str(cause) if isinstance(cause, Exception) else item["msg"]
        problems.append((variable, reason))
    order = {name: index for index, name in enumerate(VARIABLES)}
    return sorted(problems, key=lambda problem: order.get(problem[0], len(order)))
