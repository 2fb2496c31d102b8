"""Wiring shared by every driver: configuration -> engine -> payload handling."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bridge.batch import InvocationResult, Routing, process_invocation
from bridge.engine import Engine, InvocationContext
from bridge.errors import UNRECOGNIZED_EVENT, error_document
from bridge.events import Invocation, PayloadError, parse_invocation
from bridge.logs import configure_logging, install_exception_logging, log
from bridge.metrics import configure_metrics
from bridge.settings import ConfigurationError, Settings, configuration_warnings, load_settings
from bridge.storage import Storage, s3_client

logger = logging.getLogger("bridge.app")

MISSING_COMMAND = "HANDLER_COMMAND: required when no handler command is given as arguments"


def load_configuration(
    command: Sequence[str] | None,
) -> tuple[Settings, tuple[str, ...]]:
    """Load the settings and, for modes that run a handler (``command`` not None), resolve it.

    A missing handler command is reported together with every other problem.
    """
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        if command is not None and not command and not os.environ.get("HANDLER_COMMAND"):
            exc.problems.append(MISSING_COMMAND)
        raise
    return settings, (resolve_command(settings, command) if command is not None else ())


def start_observability(settings: Settings) -> None:
    """Logs, crash lines and metrics as configured; then, once, the configuration warnings.

    Every driver calls it right after loading the configuration.
    """
    configure_logging(settings.log_format, settings.log_level)
    install_exception_logging()
    configure_metrics(settings.metrics)
    for warning in configuration_warnings(settings, os.environ):
        log(logger, logging.WARNING, warning)


def resolve_command(settings: Settings, arguments: Sequence[str]) -> tuple[str, ...]:
    """The handler command: arguments take precedence over HANDLER_COMMAND."""
    command = tuple(arguments) or settings.handler_command
    if not command:
        raise ConfigurationError([MISSING_COMMAND])
    return command


@dataclass(frozen=True)
class App:
    """A configured engine and the routing rules that feed it; prepared before any event."""

    settings: Settings
    engine: Engine

    @classmethod
    def create(cls, settings: Settings, command: Sequence[str]) -> App:
        """Build the engine with its own S3 client."""
        # Transfers share one pool of TRANSFER_CONCURRENCY threads; each group running at
        # once may also list or head beside them.
        connections = settings.transfer_concurrency + settings.group_concurrency
        storage = Storage(s3_client(connections), settings.transfer_concurrency)
        return cls(settings, Engine(settings, command, storage))

    @property
    def routing(self) -> Routing:
        """Selection and grouping rules from the configuration."""
        return Routing(
            self.settings.match_key,
            self.settings.match_events,
            self.settings.pull_parent_dirs,
            self.settings.group_concurrency,
            per_object=self.settings.pull_scope == "events" and self.settings.records_lineage,
        )

    def process(
        self, invocation: Invocation, context: InvocationContext | None = None
    ) -> InvocationResult:
        """Run every group of a parsed invocation; its user arguments reach every handler."""
        context = replace(context or InvocationContext(), user_arguments=invocation.user_arguments)
        return process_invocation(
            invocation, self.routing, lambda group: self.engine.run_group(group, context)
        )

    def handle_payload(self, payload: Any, context: InvocationContext | None = None) -> Answer:
        """Process one Lambda payload exactly as the runtime does."""
        try:
            invocation = parse_invocation(payload)
        except PayloadError as exc:
            return Answer(error_document(UNRECOGNIZED_EVENT, str(exc)), is_error=True)
        result = self.process(invocation, context)
        reply = result.reply()
        if reply.is_error:
            return Answer(reply.body, is_error=True)
        failed = (*result.failed_message_ids, *reply.failed_ids)
        return Answer(
            reply.body,
            is_error=False,
            all_succeeded=result.succeeded and not reply.failed_ids,
            failed_ids=failed,
        )


@dataclass(frozen=True)
class Answer:
    """What goes back to Lambda: a response, or an error document (``is_error``).

    An SQS batch with failed messages is a response (listing them), not an error;
    ``all_succeeded`` tells the two apart, and ``failed_ids`` names the messages (SQS) or
    tasks (S3 Batch Operations) reported as failed.
    """

    body: dict[str, Any]
    is_error: bool
    all_succeeded: bool = False
    failed_ids: tuple[str, ...] = ()
