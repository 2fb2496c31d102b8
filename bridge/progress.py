"""Progress of long pulls and pushes: objects, bytes and rate, at most every few seconds.

A pull of 20,000 objects is silent for minutes otherwise; an on-call engineer then cannot
tell a slow transfer from a hung one. Transfers report each finished object here (from many
threads); a line is logged when ``interval`` seconds have passed since the last one, never
more often, and never for a transfer that ends first. The unit is the object: one huge
object shows no progress until it is done. A phase whose totals are not known in advance (a
backfill reading a listing as it goes) gives ``None`` totals; it may also attach fields about
the latest object (``last_key``) that the next line carries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.logs import log

logger = logging.getLogger("bridge.progress")

INTERVAL_SECONDS = 5.0


class Progress:
    """Counts one transfer phase (``what``: pull, push) and logs it now and then."""

    def __init__(
        self,
        what: str,
        objects_total: int | None,
        bytes_total: int | None,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        label: str = "",
    ) -> None:
        self.what = what
        self.label = label
        self.objects_total, self.bytes_total = objects_total, bytes_total
        self.objects_done = self.bytes_done = 0
        self._latest: dict[str, object] = {}
        self._interval = INTERVAL_SECONDS if interval is None else interval
        self._clock = clock
        self._started = self._last = clock()
        self._lock = threading.Lock()

    def object_done(self, size: int, **latest: object) -> None:
        """One more object finished, ``size`` bytes of it transferred; ``latest`` fields
        describe where the phase is (the next line shows the latest ones)."""
        with self._lock:
            self.objects_done += 1
            self.bytes_done += size
            self._latest.update(latest)
        self._maybe_report()

    def _maybe_report(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last < self._interval:
                return
            self._last = now
            objects, transferred = self.objects_done, self.bytes_done
            latest = dict(self._latest)
        elapsed = max(now - self._started, 1e-9)
        fields: dict[str, object] = {"group": self.label} if self.label else {}
        fields["objects_done"] = objects
        if self.objects_total is not None:
            fields["objects_total"] = self.objects_total
        fields["bytes_done"] = transferred
        if self.bytes_total is not None:
            fields["bytes_total"] = self.bytes_total
            fields["mib_per_s"] = round(transferred / elapsed / 2**20, 2)
        fields["elapsed_ms"] = round(1000 * elapsed)
        log(logger, logging.INFO, f"{self.what} progress", **fields, **latest)
