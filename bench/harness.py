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
    instead the bound every run of the bridge's own figure must stay under (``< limit``);
    with ``difference`` it is the largest acceptable bridge - baseline, in the row's unit.

    The spread is half the interquartile range of the per-run figures (the i-th run of
    each side are neighbours in time, ``interleaved``): a verdict whose margin to the limit
    is within the spread is marked ``(noisy)`` rather than reported as settled.
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
    difference: bool = False

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
    def excess(self) -> float | None:
        """bridge - baseline, of the medians (``difference`` rows)."""
        bridge, baseline = self.bridge_median, self.baseline_median
        if bridge is None or baseline is None:
            return None
        return bridge - baseline

    @property
    def figure(self) -> float | None:
        """What the verdict judges: the ratio, the excess, or the bridge's worst run."""
        if self.absolute:
            return max(self.bridge) if self.bridge else None
        return self.excess if self.difference else self.ratio

    @property
    def spread(self) -> float:
        """Half the interquartile range of the per-run figures (0 with fewer than 3 runs)."""
        if self.absolute:
            runs = list(self.bridge)
        elif len(self.bridge) != len(self.baseline):
            return 0.0
        elif self.difference:
            runs = [b - a for b, a in zip(self.bridge, self.baseline, strict=True)]
        else:
            runs = [b / a for b, a in zip(self.bridge, self.baseline, strict=True) if a]
        if len(runs) < 3:
            return 0.0
        low, _, high = statistics.quantiles(runs, n=4, method="inclusive")
        return (high - low) / 2

    @property
    def verdict(self) -> str:
        if self.crashed:
            return "CRASH"
        if self.info:
            return "info"
        figure = self.figure
        if figure is None:
            return "n/a"
        passed = figure < self.limit if self.absolute else figure <= self.limit
        word = "PASS" if passed else "MISS"
        if not self.absolute and abs(figure - self.limit) <= self.spread:
            return f"{word} (noisy)"
        return word

    @property
    def settled(self) -> bool:
        """The verdict does not depend on the run-to-run noise."""
        return not self.verdict.endswith("(noisy)")

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


def format_value(value: float | None, unit: str, runs: int | None = None) -> str:
    """A figure for the table, with how many runs it is the median of (when given)."""
    if value is None:
        return "-"
    if unit == "MB":
        text = f"{value:.0f} MB"
    elif abs(value) < 1:
        text = f"{value * 1000:.1f} ms"
    else:
        text = f"{value:.2f} s"
    return text if runs is None else f"{text} (n={runs})"


def format_figure(row: Row) -> str:
    """The ratio column: the ratio (or the excess, or the worst run) and its spread."""
    figure = row.figure
    if figure is None:
        return "-"
    spread = row.spread
    if row.absolute:
        return f"max {format_value(figure, row.unit)}"
    if row.difference:
        shown = ("+" if figure >= 0 else "") + format_value(figure, row.unit)
        return shown + (f" ±{format_value(spread, row.unit)}" if spread else "")
    return f"{figure:.3f}x" + (f" ±{spread:.3f}" if spread else "")


def render(report: Report) -> str:
    """The table, Markdown-style, then one line per note."""
    header = ("id", "what", "bridge median", "baseline median", "figure", "target", "result")
    lines: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in report.rows:
        lines.append(
            (
                row.id,
                row.what,
                format_value(row.bridge_median, row.unit, len(row.bridge)),
                format_value(row.baseline_median, row.unit, len(row.baseline)),
                format_figure(row),
                row.target,
                row.verdict,
            )
        )
        if row.note:
            notes.append(f"{row.id}: {row.note}")
        if not row.settled:
            notes.append(
                f"{row.id}: the run-to-run spread exceeds the margin to the target: "
                "not settled by this run"
            )
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(cells) for cells in lines)
    if notes:
        out.append("")
        out.extend(f"- {note}" for note in notes)
    return "\n".join(out)
