"""Building pipeline files in tests: a step's defaults, and a pipeline from a few steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.pipeline.model import Pipeline, build_pipeline


def step(name: str, bucket: str = "data", **fields: Any) -> dict[str, Any]:
    """A step document: ``on`` from ``bucket`` plus ``on_*`` fields, the rest as given."""
    on = {"bucket": bucket}
    for key in ("prefix", "suffix", "key", "events"):
        if f"on_{key}" in fields:
            on[key] = fields.pop(f"on_{key}")
    return {"name": name, "run": "python handler.py", "on": on, **fields}


def pipeline(tmp_path: Path, *steps: dict[str, Any], buckets: list[str] | None = None) -> Pipeline:
    """A validated pipeline of ``steps`` whose file would live in ``tmp_path``."""
    names = buckets or sorted({s["on"]["bucket"] for s in steps})
    document = {"pipeline": "test", "buckets": names, "steps": list(steps)}
    return build_pipeline(document, tmp_path / "pipeline.yaml")
