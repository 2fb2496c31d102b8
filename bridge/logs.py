"""Text or JSON log lines on stderr, with per-invocation context (docs/design.md §7, §8).

Use ``log(logger, level, message, **fields)``: fields become ``key=value`` pairs in text
mode and top-level members in JSON mode. The current request id (a context variable set by
the drivers) is attached to every line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TextIO

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
# Lambda names the function in every execution environment; JSON lines carry it.
FUNCTION_NAME_VAR = "AWS_LAMBDA_FUNCTION_NAME"

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# Not control characters, but line breaks to str.splitlines() and many log viewers.
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
# Lone surrogates (a key decoded from JSON's "\\ud800"): no UTF-8 stream can write them.
_CONTROL.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)})


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a hostile key cannot forge log lines.

    Lone surrogates are escaped too (``\\ud800``), so every line can be written as UTF-8.
    """
    return text.translate(_CONTROL)


def _printable_json(value: Any) -> Any:
    """``value`` with ``printable`` applied to every string inside it, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {printable(str(k)): _printable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_printable_json(item) for item in value]
    return value


def log(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """Log ``message`` with structured ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})


@contextmanager
def request_context(value: str | None, trace_header: str | None = None) -> Iterator[None]:
    """Attach request id ``value`` (and the X-Ray trace) to every line logged inside the block.

    ``trace_header`` is Lambda's ``Root=1-...;Parent=...;Sampled=1``; JSON lines carry its
    root as ``xray_trace_id``, the name AWS's own tooling filters on.
    """
    token = request_id.set(value)
    trace_token = trace_id.set(xray_root(trace_header))
    try:
        yield
    finally:
        trace_id.reset(trace_token)
        request_id.reset(token)


def xray_root(header: str | None) -> str | None:
    """The trace id (``1-5759e988-bd862e3fe1be46a994272793``) of an X-Ray trace header."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


_last_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(record: logging.LogRecord) -> str:
    # Lines come many to a second (one per invocation, at least): format each second once.
    whole = int(record.created)
    last = _last_second
    if last[0] != whole:
        last[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        last[0] = whole
    return f"{last[1]}.{int(record.msecs):03d}Z"


# json.dumps builds an encoder per call when given options: build each once.
_quoted = json.JSONEncoder(ensure_ascii=False).encode
_compact = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
_json_line = json.JSONEncoder(ensure_ascii=False, default=lambda v: printable(str(v))).encode


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", {})
    return fields


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO [request] message key=value ...``, for people."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname]
        rid = request_id.get()
        if rid:
            parts.append(f"[{rid}]")
        parts.append(printable(record.getMessage()))
        for key, value in _fields(record).items():
            parts.append(f"{key}={_text_value(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += " " + printable(self.formatException(record.exc_info))
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        text = printable(value)
        return _quoted(text) if (" " in text or not text) else text
    return printable(_compact(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp``, ``level``, ``message``, then when known
    ``requestId``, ``xray_trace_id`` and ``function_name`` (what CloudWatch users filter on),
    then the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "message": printable(record.getMessage()),
        }
        rid = request_id.get()
        if rid:
            entry["requestId"] = rid
        trace = trace_id.get()
        if trace:
            entry["xray_trace_id"] = trace
        function = os.environ.get(FUNCTION_NAME_VAR)
        if function:
            entry["function_name"] = function
        for key, value in _fields(record).items():
            entry.setdefault(key, _printable_json(value))
        if record.exc_info:
            lines = self.formatException(record.exc_info).splitlines()
            entry["stackTrace"] = [printable(line) for line in lines]
        return _json_line(entry)


def configure_logging(
    log_format: str = "text", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``log_format``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The formatters print none of a record's caller, thread or process: skip computing them
    # for every record, as the logging HOWTO's "Optimization" section advises (a third of
    # the cost of a line, which the Lambda loop pays on every invocation).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Library chatter (botocore's credential lookups, urllib3 pools) stays out of INFO.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_format_from_environment(environ: Mapping[str, str]) -> str:
    """The log format the environment asks for, without validating the whole configuration.

    ``LOG_FORMAT`` if set, else ``json`` when Lambda's ``AWS_LAMBDA_LOG_FORMAT`` is ``JSON``;
    used to report a configuration that cannot be loaded in the format it asked for.
    """
    explicit = environ.get("LOG_FORMAT", "").strip().lower()
    if explicit:
        return "json" if explicit == "json" else "text"
    return "json" if environ.get("AWS_LAMBDA_LOG_FORMAT", "").strip().upper() == "JSON" else "text"


def report(
    lines: Sequence[str],
    level: int = logging.ERROR,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    exc: BaseException | None = None,
) -> None:
    """Write diagnostic ``lines`` to stderr in the format the environment asks for.

    For what is said before logging is set up, or instead of it (a configuration that does
    not load, a usage error, a crash): plain lines, or JSON lines when ``LOG_FORMAT=json``
    (or Lambda's ``AWS_LAMBDA_LOG_FORMAT=JSON``). ``exc`` adds its stack trace to JSON lines.
    """
    out = stream or sys.stderr
    if log_format_from_environment(os.environ if environ is None else environ) == "json":
        formatter = JsonFormatter()
        for line in lines:
            info = (type(exc), exc, exc.__traceback__) if exc is not None else None
            record = logging.LogRecord("bridge", level, "", 0, line, None, info)
            print(formatter.format(record), file=out)
    else:
        for line in lines:
            print(line, file=out)
    out.flush()


def install_exception_logging() -> None:
    """Route uncaught exceptions (any thread) and Python warnings through logging.

    So that, in JSON mode, even a crash is a JSON line rather than a bare traceback.
    """
    crash = logging.getLogger("bridge.crash")

    def on_exception(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        crash.critical("uncaught exception: %s", value, exc_info=(kind, value, tb))

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        thread = args.thread.name if args.thread is not None else "?"
        crash.critical(
            "uncaught exception in thread %s: %s",
            thread,
            args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception
    logging.captureWarnings(True)
