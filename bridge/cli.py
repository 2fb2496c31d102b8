"""Command line: argument parsing and mode dispatch (docs/design.md §5). Drivers stay thin."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from bridge import __version__, containment, startup, workspace
from bridge.app import App, load_configuration, start_observability
from bridge.awserrors import ACCESS_CODES, error_code
from bridge.awserrors import describe as describe_aws_error
from bridge.errors import CONFIGURATION_ERROR, INVALID_EVENT, STARTUP_ERROR, error_document
from bridge.events import decode_json
from bridge.groups import ExecutionGroup
from bridge.logs import (
    log,
    log_format_from_environment,
    report,
)
from bridge.memory import bound_malloc_arenas
from bridge.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from bridge.backfill import BackfillSummary, Listing, Scope

PROG = "s3-event-bridge"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader left


class UsageError(Exception):
    """Bad command line: exit 2 with a one-line reason."""


class CommandFailed(Exception):
    """A mode cannot do its work: one line and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3-event-bridge`` command.

    Whatever goes wrong ends in one line on stderr (a JSON line with ``LOG_FORMAT=json``) and
    an exit status: 2 for usage and configuration errors, 1 for failures; never a traceback,
    except for a bug of the bridge's own with ``LOG_LEVEL=DEBUG``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    bound_malloc_arenas()  # before any thread starts; this process only, not the handler's
    try:
        return _dispatch(args)
    except UsageError as exc:
        report([f"{PROG}: {exc}"])
        return EXIT_USAGE
    except ConfigurationError as exc:
        report([f"{PROG}: configuration error: {problem}" for problem in exc.problems])
        return EXIT_USAGE
    except CommandFailed as exc:
        report([f"{PROG}: {exc}"])
        return exc.exit_code
    except (BotoCoreError, ClientError) as exc:
        problem = describe_aws_error(exc)
        report([f"{PROG}: {problem.message}"])
        return problem.exit_code
    except BrokenPipeError:
        # The reader went away (`plan ... | head -1`): end quietly, as Unix tools do.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of the bridge's own: one line, the traceback on demand
        debug = os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"
        lines = [f"{PROG}: internal error: {type(exc).__name__}: {exc}"]
        if not debug:
            lines[0] += " (set LOG_LEVEL=DEBUG for the traceback)"
        report(lines, logging.CRITICAL, exc=exc)
        if debug and log_format_from_environment(os.environ) != "json":
            traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILED


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@dataclass(frozen=True)
class CommandLine:
    """A parsed command line: the mode, its options, and the handler command (maybe empty)."""

    mode: str
    options: argparse.Namespace
    command: list[str]


def parse_command_line(argv: Sequence[str], runtime_api: str | None = None) -> CommandLine:
    """Parse ``s3-event-bridge [MODE] [MODE OPTIONS] [--] [HANDLER COMMAND ...]`` (§5).

    ``runtime_api`` is the value of ``AWS_LAMBDA_RUNTIME_API``: when set, no arguments or a
    bare handler command mean ``lambda`` mode. Mode options come first; the handler command
    follows ``--`` or the first non-option, and is kept untouched from there on, even
    arguments that look like options. Raises :class:`UsageError` with a one-line reason (a
    mode's ``--help`` prints and exits, as argparse does). ``--help`` and ``--version``
    before any mode are handled by :func:`main`, not here.
    """
    mode, rest = _choose_mode(list(argv), runtime_api)
    parser = _mode_parser(mode)
    try:
        options, command = _split_command(parser, rest)
    except UsageError as exc:
        if MODES[mode].takes_command and "--" not in rest and "unrecognized" in str(exc):
            raise UsageError(
                f"{exc} (if they belong to the handler command, put '--' before it: "
                f"{PROG} {mode} [OPTIONS] -- COMMAND [ARGS ...])"
            ) from None
        raise
    if command and not MODES[mode].takes_command:
        raise UsageError(f"{mode}: unexpected arguments: {' '.join(command)}")
    return CommandLine(mode, options, command)


def lambda_command_line(argv: Sequence[str], runtime_api: str | None) -> CommandLine:
    """``parse_command_line`` for lambda mode, without building a parser when the arguments
    are plain (lambda mode has no options): no argparse help machinery on the Lambda path.

    Anything else (``--help``, an option, a ``--`` inside the command) goes to argparse.
    """
    mode, rest = _choose_mode(list(argv), runtime_api)
    if mode != "lambda":
        return parse_command_line(argv, runtime_api)
    if rest[:1] == ["--"]:
        return CommandLine(mode, argparse.Namespace(command=[]), rest[1:])
    if not rest or (not rest[0].startswith("-") and "--" not in rest):
        return CommandLine(mode, argparse.Namespace(command=list(rest)), list(rest))
    return parse_command_line(argv, runtime_api)


def _dispatch(args: list[str]) -> int:
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if args and args[0] in ("-h", "--help"):
        _top_parser().print_help()
        return EXIT_OK
    if args and args[0] == "--version":
        print(f"{PROG} {__version__}")
        return EXIT_OK
    mode, _ = _choose_mode(args, runtime_api)
    if mode == "lambda" and runtime_api:
        return _start_lambda(runtime_api, args)
    return _run(parse_command_line(args, runtime_api))


def _choose_mode(args: list[str], runtime_api: str | None) -> tuple[str, list[str]]:
    """The mode, and the arguments that follow it."""
    if args and args[0] in MODES:
        return args[0], args[1:]
    if not args and runtime_api:
        # ENTRYPOINT ["s3-event-bridge"] with no CMD: the handler comes from HANDLER_COMMAND.
        return "lambda", []
    if not args:
        raise UsageError(
            f"no mode given (modes: {', '.join(MODES)}; with AWS_LAMBDA_RUNTIME_API set, no "
            f"arguments means lambda); see '{PROG} --help'"
        )
    if runtime_api and "lambda" in MODES:
        return "lambda", ["--", *args]
    raise UsageError(
        f"unknown mode {args[0]!r} (modes: {', '.join(MODES)}); a bare handler command "
        "runs lambda mode only when AWS_LAMBDA_RUNTIME_API is set"
    )


def _start_lambda(address: str, args: list[str]) -> int:
    """Lambda mode under a Runtime API: every start-up failure goes to ``init/error`` first,
    so that it shows in the function's logs and the invocation fails at once (exit 2)."""
    from bridge import runtime

    try:
        return _run(lambda_command_line(args, address))
    except UsageError as exc:
        runtime.fail_init(address, STARTUP_ERROR, [f"{PROG}: {exc}"])
    except ConfigurationError as exc:
        lines = [f"{PROG}: configuration error: {problem}" for problem in exc.problems]
        runtime.fail_init(address, CONFIGURATION_ERROR, lines)
    except Exception as exc:  # a bug, or the host refusing what the runtime needs
        runtime.fail_init(address, STARTUP_ERROR, [f"{PROG}: {type(exc).__name__}: {exc}"])
    return EXIT_USAGE


def _run(line: CommandLine) -> int:
    if line.mode != "lambda":  # the runtime ends start-up itself, before its first request
        startup.started()
    return MODES[line.mode].run(line.options, line.command)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog.removeprefix(PROG + ' ')}: {message}")


def _split_command(
    parser: argparse.ArgumentParser, rest: list[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Mode options come first; the handler command follows ``--`` or the first non-option.

    Everything from the command on is left untouched, even arguments that look like options.
    """
    if "--" in rest:
        cut = rest.index("--")
        options = parser.parse_args(rest[:cut])
        return options, [*getattr(options, "command", []), *rest[cut + 1 :]]
    options = parser.parse_args(rest)
    return options, list(getattr(options, "command", []))


# --- modes -------------------------------------------------------------------------------


def _configure(command: Sequence[str] | None = None) -> tuple[Settings, tuple[str, ...]]:
    """Load the configuration (and, for modes that run a handler, its command); set up logs."""
    settings, resolved = load_configuration(command)
    start_observability(settings)
    return settings, resolved


def _prepare_host() -> None:
    """For the modes that run handlers: contain their descendants, even past a kill -9, and
    remove the temporary folders that bridge processes killed before could not."""
    containment.enable()
    removed = workspace.remove_stale()
    if removed:
        report(
            [
                f"{PROG}: removed the temporary folder {folder} of a bridge process that did "
                "not exit cleanly"
                for folder in removed
            ],
            level=logging.WARNING,
        )


def _run_mode(options: argparse.Namespace, command: list[str]) -> int:
    settings, handler = _configure(command)
    _prepare_host()
    bucket = options.bucket or os.environ.get(settings.bucket_var)
    if not bucket:
        raise UsageError(f"run: --bucket is required (or set {settings.bucket_var})")
    prefix = (
        options.prefix
        if options.prefix is not None
        else os.environ.get(settings.key_prefix_var, "")
    )
    # A prefix names a folder, as group prefixes do: `jobs/1` must not take in `jobs/10/`.
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if settings.pull_scope == "events":
        # Nothing triggers a `run`, and events scope pulls only triggering objects.
        log(
            logging.getLogger("bridge.cli"),
            logging.WARNING,
            "run in events scope pulls nothing: there are no triggering objects",
            bucket=bucket,
            prefix=prefix,
        )
    app = App.create(settings, handler)
    outcome = app.engine.run_group(ExecutionGroup(bucket, prefix, ()))
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _invoke_mode(options: argparse.Namespace, command: list[str]) -> int:
    settings, handler = _configure(command)
    _prepare_host()
    app = App.create(settings, handler)
    try:
        payload = _read_event(options.event)
    except (OSError, ValueError) as exc:  # PayloadError is a ValueError
        _print_json(error_document(INVALID_EVENT, f"cannot read the event: {exc}"))
        return EXIT_FAILED
    answer = app.handle_payload(payload)
    _print_json(answer.body)
    return EXIT_OK if answer.all_succeeded else EXIT_FAILED


def _read_event(source: str | None) -> Any:
    if source in (None, "-"):
        text = sys.stdin.read()
    else:
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
    return decode_json(text, "the event")


def _plan_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge.planning import plan_key, render_plan

    settings, _ = _configure()
    app = App.create(settings, command=())  # plan runs no handler
    try:
        report = plan_key(app, options.bucket, options.key, options.event_name)
    except (ClientError, BotoCoreError) as exc:  # the one failure plan reports
        raise CommandFailed(f"plan: cannot list s3://{options.bucket}/: {exc}") from None
    if options.json:
        _print_json(report)
    else:
        print(render_plan(report))
    return EXIT_OK


def _event_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge.samples import sample_batch

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        payload = sample_batch(
            options.shape,
            options.bucket,
            options.key,
            event_name=options.event_name.removeprefix("s3:"),
            size=options.size,
            one_message=options.batch,
            region=region,
            schema=options.schema,
            user_arguments=dict(options.user_argument) if options.user_argument else None,
        )
    except ValueError as exc:
        raise UsageError(f"event: {exc}") from None
    _print_json(payload)
    return EXIT_OK


def _consume_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge.consumer import Consumer, ConsumerOptions
    from bridge.storage import sqs_client

    settings, handler = _configure(command)
    _prepare_host()
    consumer = Consumer(
        ConsumerOptions(
            queue_url=options.queue_url,
            workers=options.workers,
            max_messages=options.max_messages,
            visibility_timeout=options.visibility_timeout,
            wait_time=options.wait_time,
            once=options.once,
        ),
        make_app=lambda: App.create(settings, handler),
        make_sqs=sqs_client,
    )
    try:
        with consumer.signal_handlers():
            return consumer.run()
    except (BotoCoreError, ClientError) as exc:  # workers retry their own: this is start-up
        problem = describe_aws_error(exc, queue_url=options.queue_url)
        raise CommandFailed(
            f"consume: cannot start: {problem.message}", problem.exit_code
        ) from None


def _backfill_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge import backfill
    from bridge.storage import s3_client, sqs_client

    settings, _ = _configure()
    scope = _backfill_scope(options, settings)
    if not scope.acts_on_creations:
        log(
            logging.getLogger("bridge.cli"),
            logging.WARNING,
            f"MATCH_EVENTS does not match {backfill.EVENT_NAME}: no object is backfilled",
            match_events=scope.match_events.pattern if scope.match_events else None,
        )
    s3 = s3_client()
    listing = backfill.objects_to_backfill(s3, scope)
    if options.queue_url:
        sqs = sqs_client()
        try:
            backfill.check_queue(sqs, options.queue_url)
        except (BotoCoreError, ClientError) as exc:
            queue = None if error_code(exc) in ACCESS_CODES else options.queue_url
            problem = describe_aws_error(exc, queue_url=queue)
            raise CommandFailed(f"backfill: {problem.message}", problem.exit_code) from None
        summary = backfill.send_to_queue(
            listing,
            sqs,
            options.queue_url,
            region=s3.meta.region_name or "us-east-1",
            dry_run=options.dry_run,
        )
    else:
        summary = _write_manifest_file(listing, options.manifest, options.dry_run, scope)
    report([f"{PROG} backfill: {line}" for line in summary.lines()], level=logging.INFO)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _backfill_scope(options: argparse.Namespace, settings: Settings) -> Scope:
    """The scope of ``backfill``: the command line's, with the configuration's selection or,
    with ``--pipeline``, the step's trigger and selection."""
    from bridge.backfill import Scope, scope_for_step

    extra = {"start_after": options.start_after, "version_ids": options.version_ids}
    if options.pipeline is None:
        if options.step is not None:
            raise UsageError("backfill: --step needs --pipeline FILE")
        if not options.bucket:
            raise UsageError("backfill: --bucket is required (or --pipeline FILE --step NAME)")
        return Scope(
            options.bucket,
            options.prefix or "",
            match_key=settings.match_key,
            match_events=settings.match_events,
            **extra,
        )
    from bridge.pipeline.model import PipelineError, load_pipeline

    if options.step is None:
        raise UsageError("backfill: --pipeline needs --step NAME")
    try:
        step = load_pipeline(options.pipeline).step(options.step)
    except PipelineError as exc:
        raise UsageError(f"backfill: {exc.source}: {'; '.join(exc.problems)}") from None
    except KeyError as exc:
        raise UsageError(f"backfill: {exc.args[0]}") from None
    if options.bucket and options.bucket != step.spec.on.bucket:
        raise UsageError(
            f"backfill: --bucket {options.bucket} is not step {step.name}'s bucket "
            f"({step.spec.on.bucket})"
        )
    try:
        return scope_for_step(step, options.prefix, **extra)
    except ValueError as exc:
        raise UsageError(f"backfill: {exc}") from None


def _write_manifest_file(
    listing: Listing, path: str, dry_run: bool, scope: Scope
) -> BackfillSummary:
    """The manifest to ``path`` (``-``: stdout), through a temporary file renamed when
    complete: a listing that fails half way leaves no manifest that looks whole."""
    from bridge.backfill import write_manifest

    if dry_run:
        return write_manifest(listing, None, destination=path, version_ids=scope.version_ids)
    if path == "-":
        return write_manifest(
            listing, sys.stdout, destination="stdout", version_ids=scope.version_ids
        )
    folder = os.path.dirname(os.path.abspath(path))
    partial = os.path.join(folder, f".{os.path.basename(path)}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            summary = write_manifest(
                listing, stream, destination=path, version_ids=scope.version_ids
            )
        if summary.ok:
            os.replace(partial, path)
    except OSError as exc:
        raise CommandFailed(f"backfill: cannot write the manifest {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return summary


def _lambda_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge import runtime

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        raise UsageError(
            "lambda: AWS_LAMBDA_RUNTIME_API is not set (Lambda sets it; locally, run the image "
            "under the Runtime Interface Emulator, or use 'invoke')"
        )
    _prepare_host()
    try:
        return runtime.serve(address, command)
    except ConfigurationError as exc:
        lines = [f"{PROG}: configuration error: {problem}" for problem in exc.problems]
        runtime.fail_init(address, CONFIGURATION_ERROR, lines)
    except runtime.StartupError as exc:
        runtime.fail_init(address, STARTUP_ERROR, [f"{PROG}: {exc}"])
    return EXIT_USAGE


def _pipeline_mode(options: argparse.Namespace, command: list[str]) -> int:
    from bridge.pipeline.command import run

    return run(options)


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    from bridge.pipeline.command import add_arguments

    add_arguments(parser)


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


# --- parsers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mode:
    help: str
    run: Callable[[argparse.Namespace, list[str]], int]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    takes_command: bool


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="source bucket (default: the $BUCKET_VAR variable)")
    parser.add_argument("--prefix", help="group prefix (default: the $KEY_PREFIX_VAR variable)")


def _invoke_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--event", metavar="FILE", help="the Lambda event payload (default or '-': stdin)"
    )


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _consume_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue-url", required=True, help="URL of the SQS queue to consume")
    parser.add_argument(
        "--workers", type=_bounded(1, 256), default=1, help="parallel loops (default 1)"
    )
    parser.add_argument(
        "--max-messages",
        type=_bounded(1, 10),
        default=10,
        help=(
            "per receive (1-10, default 10: events of one folder arriving together share one "
            "handler run, and SQS is asked less often). A worker killed without draining "
            "(kill -9, OOM) charges a receive to every message it held: give the queue a "
            "maxReceiveCount of at least 5, or use 1 where workers are often killed"
        ),
    )
    parser.add_argument(
        "--visibility-timeout",
        type=_bounded(1, 43200),
        help="seconds (default: the queue's own); the heartbeat extends by this much",
    )
    parser.add_argument(
        "--wait-time", type=_bounded(0, 20), default=20, help="long-poll seconds (default 20)"
    )
    parser.add_argument(
        "--once", action="store_true", help="one receive, process it, delete successes, exit"
    )


def _plan_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", required=True, help="bucket of the triggering object")
    parser.add_argument("--key", required=True, help="key of the triggering object (decoded)")
    parser.add_argument(
        "--event-name", default="ObjectCreated:Put", help="event name (default ObjectCreated:Put)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _event_args(parser: argparse.ArgumentParser) -> None:
    from bridge.samples import SHAPES

    parser.add_argument("shape", choices=SHAPES, help="payload shape")
    parser.add_argument("--bucket", required=True, help="bucket name")
    parser.add_argument(
        "--key",
        required=True,
        action="append",
        help="object key (decoded; encoded as AWS does); repeat it for a batch of one message "
        "per key",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="with several --key: one message holding one record per key (sqs, sns)",
    )
    parser.add_argument(
        "--event-name",
        default="ObjectCreated:Put",
        help="S3 event name without 's3:' (default ObjectCreated:Put)",
    )
    parser.add_argument("--size", type=int, default=1024, help="object size (default 1024)")
    parser.add_argument(
        "--schema",
        choices=("1.0", "2.0"),
        help="batch-ops: invocationSchemaVersion (default 1.0; 2.0 names buckets and may carry "
        "user arguments)",
    )
    parser.add_argument(
        "--user-argument",
        metavar="NAME=VALUE",
        type=_name_value,
        action="append",
        help="batch-ops with --schema 2.0: one job.userArguments entry; repeat it",
    )


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def _backfill_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="the bucket to list (default with --pipeline: the step's)")
    parser.add_argument("--prefix", help="list only under this prefix")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--queue-url", help="send each object's S3 notification to this queue")
    where.add_argument(
        "--manifest",
        metavar="FILE",
        help="write an S3 Batch Operations CSV manifest (bucket,key[,version id]); '-': stdout",
    )
    parser.add_argument(
        "--start-after", metavar="KEY", help="resume: list only keys after KEY (the last key sent)"
    )
    parser.add_argument("--dry-run", action="store_true", help="count, send and write nothing")
    parser.add_argument(
        "--version-ids",
        action="store_true",
        help="list versions: the latest version id of each object (manifest column, versionId)",
    )
    parser.add_argument(
        "--pipeline", metavar="FILE", help="select as the --step of this pipeline file does"
    )
    parser.add_argument(
        "--step", metavar="NAME", help="the step: its bucket, notification filter and selection"
    )


MODES: dict[str, _Mode] = {
    "lambda": _Mode(
        "Lambda custom runtime: poll the Runtime API until stopped",
        _lambda_mode,
        lambda parser: None,
        True,
    ),
    "run": _Mode("run one execution group once", _run_mode, _run_args, True),
    "invoke": _Mode(
        "process one Lambda event payload and print the response",
        _invoke_mode,
        _invoke_args,
        True,
    ),
    "consume": _Mode("standalone SQS consumer", _consume_mode, _consume_args, True),
    "plan": _Mode("dry run: show what a key would trigger", _plan_mode, _plan_args, False),
    "event": _Mode("print a sample Lambda event payload", _event_mode, _event_args, False),
    "backfill": _Mode(
        "feed existing objects to a queue (or a Batch Operations manifest)",
        _backfill_mode,
        _backfill_args,
        False,
    ),
    "pipeline": _Mode(
        "pipelines in one file: check, graph, env, up, render",
        _pipeline_mode,
        _pipeline_args,
        False,
    ),
}


def _mode_parser(mode: str) -> argparse.ArgumentParser:
    spec = MODES[mode]
    parser = _Parser(prog=f"{PROG} {mode}", description=spec.help)
    spec.add_arguments(parser)
    if spec.takes_command:
        parser.add_argument(
            "command", nargs=argparse.REMAINDER, help="handler command (default HANDLER_COMMAND)"
        )
    return parser


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<8} {spec.help}" for name, spec in MODES.items()]
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [MODE] [MODE OPTIONS] [--] [HANDLER COMMAND ...]",
        description="Run a file-in/file-out program on S3 events.\n\nmodes:\n"
        + "\n".join(lines)
        + f"\n\n'{PROG} MODE --help' describes a mode. Configuration comes from environment "
        "variables (see the README).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
