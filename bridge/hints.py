"""Hints for configuration mistakes that validate but cannot be what was meant (pure).

A typo in a variable's name (``MATCH_KYE``) leaves the real variable unset, so the bridge
silently does something else; an ``s3:`` prefix in ``MATCH_EVENTS`` or a glob where a regex
is expected (``*.csv``) compiles, or fails with a message about regex syntax, and matches
nothing that was intended. These functions only spot such cases and word the hint; the
settings module decides when to say it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# Close enough to be a typo, far enough that BUCKET and BUCKET_VAR are not confused.
NEAR_MISS_CUTOFF = 0.8


def near_miss(name: str, known: Iterable[str]) -> str | None:
    """The known variable ``name`` was probably meant to be, if it is not one itself."""
    upper = name.upper()
    candidates = [k.upper() for k in known]
    if upper in candidates:
        return None
    close = difflib.get_close_matches(upper, candidates, n=1, cutoff=NEAR_MISS_CUTOFF)
    return close[0] if close else None


def looks_like_glob(pattern: str) -> bool:
    """A ``*`` at the start or after ``/``: a shell glob (``*.csv``, ``in/*``), not a regex."""
    return pattern.startswith("*") or "/*" in pattern


def glob_as_regex(pattern: str) -> str:
    """The regex that does what the glob ``pattern`` most likely meant, for a hint.

    ``*.csv`` -> ``\\.csv$`` (any key ending in .csv); ``in/*.csv`` -> ``^in/.*\\.csv$``.
    """
    body = pattern.lstrip("*")
    anchored = body == pattern
    parts = [re.escape(part) for part in body.split("*")]
    regex = ".*".join(parts).replace("\\?", ".")
    return ("^" if anchored else "") + regex + "$"


def glob_hint(pattern: str) -> str:
    """`` (a glob? as a regex: ...)`` when ``pattern`` looks like one, else ``""``."""
    if not looks_like_glob(pattern):
        return ""
    return f" (this looks like a glob; as a regex it would be '{glob_as_regex(pattern)}')"


def event_name_hint(pattern: str) -> str | None:
    """A hint when a ``MATCH_EVENTS`` pattern carries the ``s3:`` prefix of notifications."""
    if "s3:" not in pattern:
        return None
    suggestion = pattern.replace("s3:", "").replace(":*", ":.*")
    return (
        f"MATCH_EVENTS {pattern!r} contains 's3:', but event names in records have no such "
        f"prefix (only notification configurations do): did you mean {suggestion!r}?"
    )
