"""`pipeline check`'s pure analysis: edges, loops, S3-rejected notification overlaps."""

from __future__ import annotations

from pathlib import Path

from bridge.pipeline.analysis import Level, Report, analyse
from tests.pipeline_files import pipeline, step

COUNTS_KEY = r"^jobs/[^/]+/counts/[^/]+\.json$"


def edges(report: Report) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in report.edges}


def messages(report: Report, level: Level) -> list[str]:
    return [f.message for f in report.findings if f.level is level]


def wordcount(tmp_path: Path, reduce_outputs: list[str] | None) -> Report:
    map_step = step(
        "map",
        on_prefix="jobs/",
        on_suffix=".txt",
        on_key=r"^jobs/[^/]+/input/[^/]+\.txt$",
        pull={"parent_dirs": 1},
        outputs=["counts/"],
    )
    reduce_step = step(
        "reduce", on_prefix="jobs/", on_suffix=".json", on_key=COUNTS_KEY, pull={"parent_dirs": 1}
    )
    if reduce_outputs is not None:
        reduce_step["outputs"] = reduce_outputs
    return analyse(pipeline(tmp_path, map_step, reduce_step))


def test_map_feeds_reduce_and_a_reduce_writing_beside_its_inputs_is_clean(tmp_path: Path) -> None:
    report = wordcount(tmp_path, ["result/"])
    assert edges(report) == {("map", "reduce")}
    (edge,) = report.edges
    assert edge.example.startswith("jobs/") and "/counts/" in edge.example
    assert report.exit_code == 0, report.render()


def test_a_reduce_writing_into_the_folder_it_is_triggered_by_loops(tmp_path: Path) -> None:
    """counts/total.json next to counts/<name>.json: the reduce re-triggers itself."""
    report = wordcount(tmp_path, ["counts/total.json"])
    assert ("reduce", "reduce") in edges(report)
    [loop] = messages(report, Level.ERROR)
    assert loop.startswith("loop reduce -> reduce:")
    assert "s3://data/jobs/a/counts/total.json" in loop
    assert report.exit_code == 2


def test_without_outputs_anything_under_the_group_prefix_is_assumed(tmp_path: Path) -> None:
    """Without `outputs`, the reduce could write a text or counts of any job: a loop."""
    report = wordcount(tmp_path, None)
    assert edges(report) == {("map", "reduce"), ("reduce", "reduce"), ("reduce", "map")}
    [loop] = messages(report, Level.ERROR)
    assert loop.startswith("loop map -> reduce -> map:")
    assert report.exit_code == 2


def test_a_step_whose_target_is_another_steps_bucket_feeds_it(tmp_path: Path) -> None:
    resize = step("resize", bucket="uploads", to="resized", on_suffix=".jpg")
    index = step("index", bucket="resized", to="catalog")
    report = analyse(pipeline(tmp_path, resize, index, buckets=["uploads", "resized", "catalog"]))
    assert edges(report) == {("resize", "index")}
    assert report.exit_code == 0


def test_writing_back_to_the_source_bucket_of_the_previous_step_is_a_ring(tmp_path: Path) -> None:
    resize = step("resize", bucket="uploads", to="resized", on_suffix=".jpg")
    back = step("back", bucket="resized", to="uploads", outputs=["copies/"])
    report = analyse(pipeline(tmp_path, resize, back, buckets=["uploads", "resized"]))
    assert edges(report) == {("resize", "back"), ("back", "resize")}
    [loop] = messages(report, Level.ERROR)
    assert loop.startswith("loop resize -> back -> resize:")


def test_suffix_only_filter_on_a_shared_bucket_loops_when_outputs_keep_the_suffix(
    tmp_path: Path,
) -> None:
    """The classic thumbnail mistake: `.jpg` anywhere triggers, thumbnails are `.jpg`."""
    thumbs = step("thumbs", on_suffix=".jpg", outputs=["thumbnails/"])
    report = analyse(pipeline(tmp_path, thumbs))
    assert edges(report) == {("thumbs", "thumbs")}
    assert report.exit_code == 2
    fixed = step("thumbs", on_suffix=".jpg", on_key="^[^/]+$", outputs=["thumbnails/"])
    assert analyse(pipeline(tmp_path, fixed)).exit_code == 0


def test_suffix_only_filters_overlap_unless_the_suffixes_differ(tmp_path: Path) -> None:
    jpg = step("jpg", on_suffix=".jpg", to="out")
    png = step("png", on_suffix=".png", to="out")
    assert analyse(pipeline(tmp_path, jpg, png, buckets=["data", "out"])).exit_code == 0

    everything_in = step("thumbs", on_prefix="thumbs/", to="out")
    report = analyse(pipeline(tmp_path, jpg, everything_in, buckets=["data", "out"]))
    [overlap] = messages(report, Level.ERROR)
    assert overlap.startswith("jpg and thumbs: notifications on bucket data overlap")
    assert "S3 rejects" in overlap

    nested = step("big", on_suffix="big.jpg", to="out")
    report = analyse(pipeline(tmp_path, jpg, nested, buckets=["data", "out"]))
    assert any("jpg and big" in m for m in messages(report, Level.ERROR))


def test_overlap_needs_a_common_event_type(tmp_path: Path) -> None:
    created = step("created", to="out")
    removed = step("removed", to="out", on_events="^ObjectRemoved:")
    report = analyse(pipeline(tmp_path, created, removed, buckets=["data", "out"]))
    assert report.exit_code == 0, report.render()


def test_disjoint_prefixes_do_not_overlap(tmp_path: Path) -> None:
    a = step("a", on_prefix="in/a/", to="out")
    b = step("b", on_prefix="in/b/", to="out")
    c = step("c", on_prefix="in/", on_suffix=".csv", to="out")
    report = analyse(pipeline(tmp_path, a, b, c, buckets=["data", "out"]))
    overlaps = messages(report, Level.ERROR)
    assert len(overlaps) == 2
    assert overlaps[0].startswith("a and c:") and overlaps[1].startswith("b and c:")


def ring_of_three(tmp_path: Path, allowed: set[str]) -> Report:
    steps = [
        step(name, bucket=source, to=target, **({"loop": "allowed"} if name in allowed else {}))
        for name, source, target in (
            ("a", "one", "two"),
            ("b", "two", "three"),
            ("c", "three", "one"),
        )
    ]
    return analyse(pipeline(tmp_path, *steps, buckets=["one", "two", "three"]))


def test_a_ring_of_three_steps_is_an_error(tmp_path: Path) -> None:
    report = ring_of_three(tmp_path, set())
    assert edges(report) == {("a", "b"), ("b", "c"), ("c", "a")}
    [loop] = messages(report, Level.ERROR)
    assert loop.startswith("loop a -> b -> c -> a:")
    assert "'loop: allowed' on a, b, c" in loop
    assert report.exit_code == 2


def test_a_ring_allowed_by_some_steps_only_is_still_an_error(tmp_path: Path) -> None:
    report = ring_of_three(tmp_path, {"a", "c"})
    [loop] = messages(report, Level.ERROR)
    assert loop.endswith("'loop: allowed' on b")


def test_a_ring_every_step_allows_is_a_note(tmp_path: Path) -> None:
    report = ring_of_three(tmp_path, {"a", "b", "c"})
    [note] = messages(report, Level.NOTE)
    assert note.startswith("loop a -> b -> c -> a is allowed")
    assert report.exit_code == 0


def test_removal_only_steps_are_not_triggered_by_outputs(tmp_path: Path) -> None:
    cleaner = step("cleaner", on_events="^ObjectRemoved:", outputs=["log/"])
    report = analyse(pipeline(tmp_path, cleaner))
    assert report.edges == ()
    assert report.exit_code == 0


def test_a_trigger_no_key_can_pass_is_a_warning(tmp_path: Path) -> None:
    never = step("never", on_prefix="a/", on_key="^b/", to="out")
    report = analyse(pipeline(tmp_path, never, buckets=["data", "out"]))
    [warning] = messages(report, Level.WARNING)
    assert "never" in warning and "never runs" in warning
    assert report.exit_code == 1


def test_group_prefix_depth_decides_where_outputs_land(tmp_path: Path) -> None:
    """parent_dirs 0 keeps outputs beside the trigger: in/x.csv -> in/out/x.csv loops back
    only when the trigger accepts nested keys."""
    shallow = step("s", on_key=r"^in/[^/]+\.csv$", outputs=["out/"])
    assert analyse(pipeline(tmp_path, shallow)).edges == ()
    deep = step("d", on_key=r"^in/.+\.csv$", outputs=["out/"])
    report = analyse(pipeline(tmp_path, deep))
    [edge] = report.edges
    assert edge.example.startswith("in/out/") and edge.example.endswith(".csv")


def test_variables_too_big_for_a_lambda_environment_are_a_warning(tmp_path: Path) -> None:
    program = "[" + "1," * 2100 + "1] | length > 0"
    big = step("big", to="out", filter=program)
    report = analyse(pipeline(tmp_path, big, buckets=["data", "out"]))
    [warning] = messages(report, Level.WARNING)
    assert "Lambda allows 4096 in a function's environment" in warning
    assert report.exit_code == 1
    small = step("small", to="out", filter="length > 0")
    assert analyse(pipeline(tmp_path, small, buckets=["data", "out"])).exit_code == 0
