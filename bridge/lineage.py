"""Lineage records: which outputs a step made from which inputs (docs/design.md §15). Pure.

A record is about one *unit*: in events scope one input object (its outputs are those of
the runs it triggered alone), in prefix scope one group prefix (the outputs of the group's
last run). It lives in the target bucket, beside the outputs, under a reserved prefix that
is never an input, at a key computed from the unit alone, so a deletion finds it with one
GetObject and no listing:

    .s3-event-bridge/lineage/<step>/<source bucket>/objects/<input key>.json
    .s3-event-bridge/lineage/<step>/<source bucket>/groups/<group prefix>.group.json

A key too long for S3 (1,024 bytes) is named by its SHA-256 under ``hashed/`` instead; the
record itself always holds the unit, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RESERVED_PREFIX = ".s3-event-bridge/"
LINEAGE_PREFIX = RESERVED_PREFIX + "lineage/"
FORMAT_VERSION = 1
MAX_KEY_BYTES = 1024
_OBJECT_SUFFIX = ".json"
_GROUP_SUFFIX = ".group.json"

Kind = Literal["object", "group"]


def is_reserved(key: str) -> bool:
    """The key belongs to the bridge's own records: never an input, never an output."""
    return key.startswith(RESERVED_PREFIX)


@dataclass(frozen=True)
class Unit:
    """What a record is about: an input object (``kind="object"``, ``name`` its key) or a
    group (``kind="group"``, ``name`` its prefix), read by ``step`` from ``bucket``."""

    step: str
    bucket: str
    kind: Kind
    name: str

    @property
    def record_key(self) -> str:
        """Where the record of this unit is stored in the target bucket."""
        base = step_records_prefix(self.step, self.bucket)
        if self.kind == "object":
            key = f"{base}objects/{self.name}{_OBJECT_SUFFIX}"
        else:
            key = f"{base}groups/{self.name}{_GROUP_SUFFIX}"
        if len(key.encode("utf-8")) <= MAX_KEY_BYTES:
            return key
        digest = hashlib.sha256(self.name.encode("utf-8")).hexdigest()
        return f"{base}hashed/{self.kind}/{digest}{_OBJECT_SUFFIX}"

    @property
    def label(self) -> str:
        """``s3://bucket/key`` (or ``/prefix``) for logs."""
        return f"s3://{self.bucket}/{self.name}"


def step_records_prefix(step: str, bucket: str) -> str:
    """The prefix holding every record of ``step`` about objects of ``bucket``."""
    return f"{LINEAGE_PREFIX}{step}/{bucket}/"


def unit_of_record_key(step: str, bucket: str, key: str) -> Unit | None:
    """The unit a record key names, from the key alone; None for a hashed key (its unit is
    in the record) or a key that is not a record of this step and bucket."""
    base = step_records_prefix(step, bucket)
    if not key.startswith(base):
        return None
    rest = key[len(base) :]
    if rest.startswith("objects/") and rest.endswith(_OBJECT_SUFFIX):
        return Unit(step, bucket, "object", rest[len("objects/") : -len(_OBJECT_SUFFIX)])
    if rest.startswith("groups/") and rest.endswith(_GROUP_SUFFIX):
        return Unit(step, bucket, "group", rest[len("groups/") : -len(_GROUP_SUFFIX)])
    return None


@dataclass(frozen=True)
class LineageRecord:
    """The inputs a unit's last run read and the outputs it left (key -> ETag, unquoted).

    ``outputs`` are keys of ``target``; an output is removed later only if its ETag is
    still the one recorded here.
    """

    unit: Unit
    target: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The stored form: a small, stable JSON document."""
        document = {
            "version": FORMAT_VERSION,
            "step": self.unit.step,
            "bucket": self.unit.bucket,
            "kind": self.unit.kind,
            "name": self.unit.name,
            "target": self.target,
            "inputs": dict(sorted(self.inputs.items())),
            "outputs": dict(sorted(self.outputs.items())),
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> LineageRecord:
        """Parse a stored record; ``ValueError`` naming ``where`` when it is not one."""
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a version {FORMAT_VERSION} lineage record")
            kind = document["kind"]
            if kind not in ("object", "group"):
                raise ValueError(f"unknown kind {kind!r}")
            unit = Unit(
                _text(document, "step"), _text(document, "bucket"), kind, _text(document, "name")
            )
            return cls(
                unit,
                _text(document, "target"),
                _etags(document, "inputs"),
                _etags(document, "outputs"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: unreadable lineage record: {exc}") from None


@dataclass(frozen=True)
class Removal:
    """What a removal did: outputs deleted, outputs already gone, outputs kept (key -> why)."""

    removed: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    kept: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: Removal) -> Removal:
        return Removal(
            self.removed + other.removed, self.gone + other.gone, {**self.kept, **other.kept}
        )


def _text(document: Mapping[str, Any], name: str) -> str:
    value = document[name]
    if not isinstance(value, str):
        raise ValueError(f"{name!r} is not a string")
    return value


def _etags(document: Mapping[str, Any], name: str) -> dict[str, str]:
    value = document.get(name, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name!r} is not an object of key -> ETag strings")
    return dict(value)


def stale_outputs(previous: LineageRecord | None, present: Mapping[str, str]) -> dict[str, str]:
    """The outputs ``previous`` recorded that the new run did not leave (key -> recorded
    ETag): what ``remove-outputs`` deletes. Everything recorded when the unit is gone
    (``present`` empty)."""
    if previous is None:
        return {}
    return {key: etag for key, etag in previous.outputs.items() if key not in present}
