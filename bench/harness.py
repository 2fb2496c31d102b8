"""What every benchmark shares: the local S3 endpoint, timing, results and the table."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path[:0] = [str(REPO), str(REPO / "examples")]  # the bridge, tests/ and local_aws

from local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MotoServer  # noqa: E402

T = TypeVar("T")

AWS_ENV = FAKE_AWS_ENV
BRIDGE_VARIABLES = LEAKY_VARIABLES


RANGED_MOTO = (str(BENCH / "moto_ranged.py"),)


def start_endpoint(plain_moto: bool) -> MotoServer:
    """Start the local S3 endpoint in its own process: moto with ranged reads fixed
    (``bench/moto_ranged.py``, the default), or moto exactly as shipped."""
    return MotoServer() if plain_moto else MotoServer(server=RANGED_MOTO)


def prepare_environment(endpoint: str) -> None:
    """Point this process (and its children) at ``endpoint`` with fake credentials."""
    for name in BRIDGE_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(AWS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint


def interleaved(sides: Sequence[Callable[[], T]], runs: int, warmup: bool = True) -> list[list[T]]:
    """Run every side ``runs`` times, rotating which goes first; each returns its measure.

    With ``warmup``, one untimed run of each comes first (connection pools, file cache).
    Returns one list of measures per side, in the order of ``sides``.
    """
    if warmup:
        for side in sides:
            side()
    results: list[list[T]] = [[] for _ in sides]
    for run in range(runs):
        for turn in range(len(sides)):
            index = (run + turn) % len(sides)
            results[index].append(sides[index]())
    return results


def stopwatch(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Row:
    """One line of the table: medians of both sides and the target they are held to.

    ``limit`` is the largest acceptable ratio bridge / baseline; with ``absolute`` it is
    instead the bound the bridge's own figure must stay under (``< limit``).
    """

    id: str
    what: str
    unit: str  # "s" or "MB"
    bridge: list[float]
    baseline: list[float]
    target: str
    limit: float
    absolute: bool = False
    note: str = ""
    crashed: bool = False
    info: bool = False  # shown for contrast only: no target to meet

    @property
    def bridge_median(self) -> float | None:
        return statistics.median(self.bridge) if self.bridge else None

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        bridge, baseline = self.bridge_median, self.baseline_median
        if bridge is None or not baseline:
            return None
        return bridge / baseline

    @property
    def verdict(self) -> str:
        if self.crashed:
            return "CRASH"
        if self.info:
            return "info"
        if self.absolute:
            bridge = self.bridge_median
            if bridge is None:
                return "n/a"
            return "PASS" if bridge < self.limit else "MISS"
        ratio = self.ratio
        if ratio is None:
            return "n/a"
        return "PASS" if ratio <= self.limit else "MISS"

    @classmethod
    def missing(cls, id: str, what: str, target: str, note: str) -> Row:
        """A row that could not be measured (``n/a``), with the reason in ``note``."""
        return cls(id, what, "s", [], [], target, 0.0, note=note)

    @classmethod
    def crash(cls, id: str, what: str, target: str, note: str) -> Row:
        """A row whose benchmark raised."""
        return cls(id, what, "s", [], [], target, 0.0, note=note, crashed=True)


@dataclass
class Report:
    """The rows gathered so far."""

    rows: list[Row] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return any(row.crashed for row in self.rows)


def format_value(value: float | None, unit: str, runs: int) -> str:
    """A median for the table, with how many runs it is the median of."""
    if value is None:
        return "-"
    if unit == "MB":
        text = f"{value:.0f} MB"
    elif value < 1:
        text = f"{value * 1000:.1f} ms"
    else:
        text = f"{value:.2f} s"
    return f"{text} (n={runs})"


def render(report: Report) -> str:
    """The table, Markdown-style, then one line per note."""
    header = ("id", "what", "bridge median", "baseline median", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in report.rows:
        ratio = row.ratio
        lines.append(
            (
                row.id,
                row.what,
                format_value(row.bridge_median, row.unit, len(row.bridge)),
                format_value(row.baseline_median, row.unit, len(row.baseline)),
                "-" if ratio is None else f"{ratio:.3f}x",
                row.target,
                row.verdict,
            )
        )
        if row.note:
            notes.append(f"{row.id}: {row.note}")
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(cells) for cells in lines)
    if notes:
        out.append("")
        out.extend(f"- {note}" for note in notes)
    return "\n".join(out)
