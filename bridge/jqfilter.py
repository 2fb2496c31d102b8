"""The execution filter (docs/design.md §2 step 5): a jq program over the listed objects.

The ``jq`` extension is imported by the first ``compile``: a configuration without an
execution filter never loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class FilterCompileError(ValueError):
    """The jq program does not compile."""


class FilterRuntimeError(RuntimeError):
    """The jq program failed on the listing; the group fails."""


@dataclass(frozen=True)
class FilterVerdict:
    """The filter's decision: ``proceed`` is False only when the first output is ``false``."""

    proceed: bool
    first_output: Any  # None when the program produced no output
    produced_output: bool

    def describe(self) -> str:
        """A short human-readable account of the verdict, for logs and ``plan``."""
        if not self.produced_output:
            return "no output: proceed"
        verb = "proceed" if self.proceed else "skip"
        return f"first output {_short_json(self.first_output)}: {verb}"


@dataclass(frozen=True)
class ExecutionFilter:
    """A compiled jq program; thread-safe to evaluate (each call starts a fresh jq state)."""

    program: str
    _compiled: Any

    @classmethod
    def compile(cls, program: str) -> ExecutionFilter:
        """Compile ``program``; raise ``FilterCompileError`` with jq's own message."""
        import jq

        try:
            return cls(program, jq.compile(program))
        except ValueError as exc:
            message = " ".join(str(exc).split())
            raise FilterCompileError(f"invalid jq program: {message}") from exc

    def evaluate(self, objects: list[dict[str, Any]]) -> FilterVerdict:
        """Run the program on the listing; only the first output counts."""
        try:
            outputs = self._compiled.input_value(objects)
            first = next(iter(outputs))
        except StopIteration:
            return FilterVerdict(proceed=True, first_output=None, produced_output=False)
        except ValueError as exc:
            raise FilterRuntimeError(f"execution filter failed: {exc}") from exc
        return FilterVerdict(proceed=first is not False, first_output=first, produced_output=True)


def _short_json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
