"""The pipeline file: validation with the bridge's own settings model, every problem at once
with its path; a step is exactly the variables `pipeline env` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from env_file import read_env_file

from bridge.cli import main
from bridge.pipeline.model import PipelineError, load_pipeline
from bridge.settings import Settings
from tests.conftest import EXAMPLES

WORDCOUNT = EXAMPLES / "wordcount" / "pipeline.yaml"

BROKEN = """\
pipeline: broken
buckets: [data, Not_A_Bucket]
steps:
  - name: map
    run: python map.py
    on: {bucket: data, key: '^jobs/[a-'}
    colour: blue
  - name: reduce
    run: python reduce.py
    on: {bucket: other, key: '(unclosed', events: '^Nothing'}
    filter: {file: missing.jq}
    pull: {keys: ['a,b'], parent_dirs: many}
    env: {MATCH_KEY: x, MAX_CHAIN_DEPTH: -1, TOP_WORDS: 10}
    timeout: 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        load_pipeline(write(tmp_path, text))
    return caught.value.problems


def test_shape_problems_are_all_reported_with_their_paths(tmp_path: Path) -> None:
    found = problems(tmp_path, BROKEN)
    assert "buckets[1]: 'Not_A_Bucket' is not a valid name" in " ".join(found)
    assert "steps[0].colour: Extra inputs are not permitted" in found
    assert any(
        p.startswith("steps[1].pull.parent_dirs: Input should be a valid integer") for p in found
    )
    assert any(p.startswith("steps[1].timeout: Input should be greater than 0") for p in found)


def test_step_problems_come_from_the_settings_model_all_at_once(tmp_path: Path) -> None:
    text = BROKEN.replace("buckets: [data, Not_A_Bucket]", "buckets: [data]")
    text = text.replace("    colour: blue\n", "").replace("parent_dirs: many", "parent_dirs: 2")
    text = text.replace("timeout: 0", "timeout: 30")
    found = problems(tmp_path, text)
    assert (
        "steps[0].on.key: invalid regular expression: unterminated character set at position 6"
        in found
    )
    assert any(
        p.startswith("steps[1].on.key: invalid regular expression: missing )") for p in found
    )
    assert any(
        p.startswith("steps[1].on.bucket: 'other' is not one of the pipeline's buckets")
        for p in found
    )
    assert "steps[1].env.MATCH_KEY: set by the step's 'on.key' instead" in found
    assert any(p.startswith("steps[1].pull.keys[0]: contains a comma") for p in found)
    assert (
        "steps[1].on.events: '^Nothing' matches no S3 event type (e.g. ObjectCreated:Put)" in found
    )
    assert any(
        p.startswith("steps[1].env.MAX_CHAIN_DEPTH: Input should be greater than or equal to 0")
        for p in found
    )
    assert any(
        p.startswith("steps[1].filter.file: cannot read") and "missing.jq" in p for p in found
    )


def test_a_shape_error_in_one_step_does_not_hide_another_steps_problems(tmp_path: Path) -> None:
    text = """\
pipeline: twosteps
buckets: [data]
steps:
  - name: map
    run: python map.py
    on: {bucket: data}
    pull: {parent_dirs: x}
  - name: reduce
    run: python reduce.py
    on: {bucket: data, key: '^jobs/[a-'}
"""
    found = problems(tmp_path, text)
    assert any(
        p.startswith("steps[0].pull.parent_dirs: Input should be a valid integer") for p in found
    )
    assert (
        "steps[1].on.key: invalid regular expression: unterminated character set at position 6"
        in found
    )


def test_remove_outputs_needs_the_removal_events(tmp_path: Path) -> None:
    text = """\
pipeline: deletions
buckets: [data]
steps:
  - name: map
    run: python map.py
    on: {bucket: data, events: '^ObjectCreated:'}
    on_delete: remove-outputs
"""
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("steps[0].on_delete: remove-outputs needs on.events to match")
    step = load_pipeline(write(tmp_path, text.replace(", events: '^ObjectCreated:'", ""))).steps[0]
    assert step.variables["ON_DELETE"] == "remove-outputs"
    assert (step.variables["LINEAGE"], step.variables["STEP_NAME"]) == ("on", "map")
    assert "ObjectRemoved:Delete" in step.notification_events
    assert "ObjectRemoved:DeleteMarkerCreated" in step.notification_events


def test_yaml_keeps_on_as_a_key_and_rejects_duplicate_keys(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare `on` as the boolean true; the file format needs it as a key."""
    path = write(
        tmp_path,
        "pipeline: p\nbuckets: [data]\nsteps:\n"
        "  - {name: s, run: x, on: {bucket: data}, env: {A: yes}}\n",
    )
    step = load_pipeline(path).step("s")
    assert step.spec.on.bucket == "data" and step.variables["A"] == "yes"
    found = problems(tmp_path, "pipeline: p\npipeline: q\nbuckets: [data]\nsteps: []\n")
    assert len(found) == 1 and "duplicate key 'pipeline' (line 2)" in found[0]


def test_not_yaml_is_one_problem(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "pipeline: [unclosed\n")
    assert problem.startswith("not valid YAML")


@pytest.mark.parametrize(
    ("example", "step_name", "env_file"),
    [
        ("wordcount", "map", "map.env"),
        ("wordcount", "reduce", "reduce.env"),
        ("thumbnails", "thumbnails", "thumbnails.env"),
        ("tenants", "tenants", "tenants.env"),
    ],
)
def test_steps_are_exactly_the_example_env_files(
    example: str, step_name: str, env_file: str
) -> None:
    """A pipeline file and the example's env files configure the same steps (variables
    the env file sets to the bridge's default aside)."""
    step = load_pipeline(EXAMPLES / example / "pipeline.yaml").step(step_name)
    by_file = read_env_file(EXAMPLES / example / env_file)
    defaults = {
        key: value
        for key, value in by_file.items()
        if key.lower() in Settings.model_fields
        and str(Settings.model_fields[key.lower()].default).lower() == value.lower()
    }
    assert step.variables == {k: v for k, v in by_file.items() if k not in defaults}


def test_env_prints_the_variables_consume_runs_with(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["pipeline", "env", str(WORDCOUNT), "reduce"]) == 0
    printed = tmp_path / "reduce.env"
    printed.write_text(capsys.readouterr().out, encoding="utf-8")
    variables = read_env_file(printed)
    assert variables == load_pipeline(WORDCOUNT).step("reduce").variables
    assert variables["EXECUTION_FILTER_FILE"] == "reduce-filter.jq"
    assert variables["TOP_WORDS"] == "10"


def test_env_of_an_unknown_step_names_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "env", str(WORDCOUNT), "nope"]) == 2
    assert "no step 'nope' in pipeline 'wordcount' (steps: map, reduce)" in capsys.readouterr().err


def test_cli_reports_every_problem_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, BROKEN)
    for command in ("check", "graph", "up", "render"):
        extra = ["--format", "sam"] if command == "render" else []
        assert main(["pipeline", command, str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{path}: steps[0].colour: Extra inputs are not permitted" in err
        assert err.count("\n") >= 4


def test_other_modes_start_without_yaml() -> None:
    code = "import sys, bridge.cli; sys.exit('yaml' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_docs_show_what_check_prints_for_the_looping_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """docs/pipelines.md's deliberately looping file, checked: output and exit status."""
    text = (EXAMPLES.parent / "docs" / "pipelines.md").read_text(encoding="utf-8")
    section = text[text.index("A deliberately looping file") :]
    document = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    session = section.split("```\n$ s3-event-bridge pipeline check thumbs.yaml\n", 1)[1]
    shown, status = session.split("$ echo $?\n", 1)
    path = tmp_path / "thumbs.yaml"
    path.write_text(document, encoding="utf-8")
    assert main(["pipeline", "check", str(path)]) == int(status.split("\n", 1)[0])
    assert capsys.readouterr().out == shown
