"""Unit tests for bridge.logs: text and JSON log lines (docs/design.md §7, §8, §11)."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.logs import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log,
    printable,
    request_context,
    request_id,
)

TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
HOSTILE_KEY = "in/evil\n2026-01-01T00:00:00.000Z ERROR forged\x1b[31m\r\t\x00\x7f\x85.txt"


RECORD_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put everything back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3")}
    flags = {name: getattr(logging, name) for name in RECORD_FLAGS}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, noisy_level in noisy.items():
            logging.getLogger(name).setLevel(noisy_level)
        for name, value in flags.items():
            setattr(logging, name, value)


def record(message: str, level: int = logging.INFO, /, **fields: Any) -> logging.LogRecord:
    """A record exactly as ``log`` makes it."""
    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(record)

    logger = logging.getLogger("tests.logs.record")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    keep = Keep()
    logger.addHandler(keep)
    try:
        log(logger, level, message, **fields)
    finally:
        logger.removeHandler(keep)
    (only,) = made
    return only


def text(message: str, level: int = logging.INFO, /, **fields: Any) -> str:
    return TextFormatter().format(record(message, level, **fields))


def as_json(message: str, level: int = logging.INFO, /, **fields: Any) -> dict[str, Any]:
    line = JsonFormatter().format(record(message, level, **fields))
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


# --------------------------------------------------------------------------- printable


def test_printable_escapes_control_characters() -> None:
    assert printable("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert printable("\x00\x1b\x7f\x85\x9f") == "\\x00\\x1b\\x7f\\x85\\x9f"
    assert printable("plain é 日本 😀") == "plain é 日本 😀"


def test_printable_escapes_unicode_line_separators() -> None:
    """U+2028/U+2029 split lines for str.splitlines() and many log viewers."""
    escaped = printable("a\u2028b\u2029c")
    assert escaped == "a\\u2028b\\u2029c"
    assert escaped.splitlines() == [escaped]


# --------------------------------------------------------------------------- text


def test_printable_escapes_lone_surrogates() -> None:
    assert printable("in/\ud800.txt") == "in/\\ud800.txt"
    assert printable("\udcff\udfff") == "\\udcff\\udfff"
    assert printable("😀") == "😀"  # a pair in UTF-8 is a real character, kept


SURROGATE_KEY = "in/\ud800\nforged.txt"


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.usefixtures("restore_logging")
def test_lone_surrogate_key_is_escaped_on_a_strict_utf8_stream(log_format: str) -> None:
    """No UnicodeEncodeError, wherever the key sits: message, field, list, mapping, exception."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    configure_logging(log_format, "INFO", stream)
    logger = logging.getLogger("bridge.test")
    path = __import__("pathlib").PurePosixPath("/tmp/" + "\udcff")  # os.fsdecode of b"\xff"
    log(logger, logging.INFO, f"object skipped {SURROGATE_KEY}", key=SURROGATE_KEY)
    log(logger, logging.INFO, "group summary", events=[SURROGATE_KEY], skipped={SURROGATE_KEY: 1})
    log(logger, logging.INFO, "path", path=path)
    try:
        raise OSError(f"cannot open {SURROGATE_KEY}")
    except OSError:
        logger.exception("unexpected error with %s", SURROGATE_KEY)

    written = raw.getvalue().decode("utf-8")  # strict: it all is UTF-8
    lines = written.splitlines()
    assert len(lines) == 4, written
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert entries[0]["key"] == "in/\\ud800\\nforged.txt"
        assert entries[1]["events"] == ["in/\\ud800\\nforged.txt"]
        assert entries[1]["skipped"] == {"in/\\ud800\\nforged.txt": 1}
        assert entries[2]["path"] == "/tmp/\\udcff"
        assert any("\\ud800" in line for line in entries[3]["stackTrace"])
    else:
        assert "key=in/\\ud800\\nforged.txt" in lines[0]
        assert 'path="/tmp/\\udcff"' in lines[2]
        assert "OSError: cannot open in/\\ud800\\nforged.txt" in lines[3]


def test_text_line_format() -> None:
    line = text("group done", bucket="bkt", count=3, ok=True, ratio=0.5)
    match = re.fullmatch(rf"({TIMESTAMP}) INFO group done (.*)", line)
    assert match, line
    assert match.group(2) == "bucket=bkt count=3 ok=true ratio=0.5"


def test_text_line_levels() -> None:
    assert re.fullmatch(rf"{TIMESTAMP} WARNING careful", text("careful", logging.WARNING))
    assert re.fullmatch(rf"{TIMESTAMP} ERROR broken", text("broken", logging.ERROR))


def test_text_values_with_spaces_or_empty_are_quoted() -> None:
    line = text("m", key="red flower.jpg", empty="", plain="x")
    assert line.endswith(' key="red flower.jpg" empty="" plain=x')


def test_text_structured_values_are_compact_json() -> None:
    line = text("m", skipped={"a": "folder marker"}, keys=["a", "b"], nothing=None)
    assert line.endswith(' skipped={"a":"folder marker"} keys=["a","b"] nothing=null')


def test_text_includes_request_id_inside_request_context() -> None:
    with request_context("req-123"):
        line = text("hello")
    assert re.fullmatch(rf"{TIMESTAMP} INFO \[req-123\] hello", line)
    assert "[req-123]" not in text("hello")


def test_text_escapes_hostile_key_in_fields() -> None:
    line = text("event ignored", key=HOSTILE_KEY)
    assert len(line.splitlines()) == 1
    for raw in "\n\r\t\x00\x1b\x7f\x85":
        assert raw not in line
    assert "\\n2026-01-01T00:00:00.000Z" in line
    assert "\\x1b[31m" in line


def test_text_escapes_hostile_message() -> None:
    line = text(f"handler says {HOSTILE_KEY}")
    assert len(line.splitlines()) == 1
    assert "\x1b" not in line and "\n" not in line
    assert "evil\\n2026" in line


def test_text_escapes_control_characters_inside_structured_values() -> None:
    line = text("m", keys=[HOSTILE_KEY], nested={HOSTILE_KEY: 1})
    assert len(line.splitlines()) == 1
    assert "\x1b" not in line and "\n" not in line


def test_text_exception_stays_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    line = TextFormatter().format(rec)
    assert len(line.splitlines()) == 1
    assert "ValueError: bad\\nthing" in line
    assert "Traceback" in line


# --------------------------------------------------------------------------- JSON


def test_json_line_has_standard_members_and_fields() -> None:
    entry = as_json("group done", bucket="bkt", count=3, keys=["a"], ok=False)
    assert re.fullmatch(TIMESTAMP, entry.pop("timestamp"))
    assert entry == {
        "level": "INFO",
        "message": "group done",
        "bucket": "bkt",
        "count": 3,
        "keys": ["a"],
        "ok": False,
    }


def test_json_request_id_inside_request_context() -> None:
    with request_context("req-9"):
        assert as_json("x")["requestId"] == "req-9"
    assert "requestId" not in as_json("x")
    assert request_id.get() is None


def test_json_fields_do_not_override_standard_members() -> None:
    with request_context("real"):
        entry = as_json("real message", message="forged", level="DEBUG", requestId="forged")
    assert entry["message"] == "real message"
    assert entry["level"] == "INFO"
    assert entry["requestId"] == "real"


def test_json_escapes_hostile_key() -> None:
    entry = as_json(HOSTILE_KEY, key=HOSTILE_KEY)
    assert "\x1b" not in entry["key"] and "\n" not in entry["key"]
    assert entry["key"] == printable(HOSTILE_KEY)
    assert entry["message"] == printable(HOSTILE_KEY)


def test_json_exception_is_a_stack_trace_list() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record("failed", logging.ERROR)
        rec.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["level"] == "ERROR"
    assert isinstance(entry["stackTrace"], list)
    assert entry["stackTrace"][-1] == "RuntimeError: boom"


def test_json_non_serialisable_values_become_strings() -> None:
    entry = as_json("m", when=object, path=__import__("pathlib").PurePosixPath("/a b"))
    assert entry["path"] == "/a b"
    assert entry["when"] == str(object)


# --------------------------------------------------------------------------- configure_logging


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_json_one_object_per_line() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    logger = logging.getLogger("bridge.test")
    with request_context("rid-1"):
        log(logger, logging.INFO, "first", key=HOSTILE_KEY)
        log(logger, logging.WARNING, "second\nline", size=5)
    log(logger, logging.DEBUG, "hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "first" and first["requestId"] == "rid-1"
    assert first["key"] == printable(HOSTILE_KEY)
    assert second["level"] == "WARNING" and second["size"] == 5
    assert second["message"] == "second\\nline"


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_text_and_level() -> None:
    stream = io.StringIO()
    configure_logging("text", "DEBUG", stream)
    log(logging.getLogger("bridge.test"), logging.DEBUG, "visible", n=1)
    assert re.fullmatch(rf"{TIMESTAMP} DEBUG visible n=1\n", stream.getvalue())
    assert logging.getLogger().level == logging.DEBUG
    # Library chatter stays at WARNING even in DEBUG.
    assert logging.getLogger("botocore").level == logging.WARNING
    assert logging.getLogger("urllib3").level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_replaces_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", "INFO", first)
    configure_logging("json", "INFO", second)
    root = logging.getLogger()
    assert len(root.handlers) == 1
    log(logging.getLogger("bridge.test"), logging.INFO, "once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("text", "ERROR", stream)
    logger = logging.getLogger("bridge.test")
    log(logger, logging.WARNING, "no")
    log(logger, logging.ERROR, "yes")
    assert [line.split()[-1] for line in stream.getvalue().splitlines()] == ["yes"]


def test_request_context_is_per_thread() -> None:
    seen: list[str | None] = []
    with request_context("main-thread"):
        worker = threading.Thread(target=lambda: seen.append(request_id.get()))
        worker.start()
        worker.join()
        assert request_id.get() == "main-thread"
    assert seen == [None]
    assert request_id.get() is None


def test_log_skips_disabled_levels() -> None:
    logger = logging.getLogger("tests.logs.disabled")
    logger.setLevel(logging.ERROR)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logger.addHandler(keep)
    try:
        log(logger, logging.INFO, "dropped")
        log(logger, logging.ERROR, "kept", a=1)
    finally:
        logger.removeHandler(keep)
    assert [(r.getMessage(), r.fields) for r in seen] == [("kept", {"a": 1})]  # type: ignore[attr-defined]


def test_records_skip_what_no_line_prints(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    made = record("hello", logging.INFO, key="value")
    # No caller lookup, thread or process per record: the formatters print none of them.
    assert (made.lineno, made.thread, made.process) == (0, None, None)
    logging.getLogger("bridge.test").info("a line")
    assert json.loads(stream.getvalue())["message"] == "a line"
