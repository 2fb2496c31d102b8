"""``pipeline graph``: the pipeline as Mermaid text (docs/design.md §14). Pure.

Buckets are the nodes; each step is an edge from the bucket it is triggered on to the bucket
it writes, labelled with its name, its trigger (notification prefix and suffix) and its
declared outputs.
"""

from __future__ import annotations

from bridge.pipeline.model import Pipeline, StepConfig


def trigger_label(step: StepConfig) -> str:
    """``map: jobs/*.txt → counts/``: the step, the keys its notification covers and, when
    declared, where it writes (relative to the group prefix)."""
    on = step.spec.on
    label = f"{step.name}: {on.prefix}*{on.suffix}"
    if step.spec.outputs:
        label += " → " + ", ".join(step.spec.outputs)
    return label


def mermaid(pipeline: Pipeline) -> str:
    """A Mermaid flowchart: ``flowchart LR``, one node per bucket, one edge per step."""
    ids = {bucket: f"b{index}" for index, bucket in enumerate(pipeline.all_buckets)}
    lines = ["flowchart LR"]
    for bucket, node in ids.items():
        lines.append(f'  {node}[("{_escape(bucket)}")]')
    for step in pipeline.steps:
        source, target = ids[step.spec.on.bucket], ids[step.target]
        lines.append(f'  {source} -->|"{_escape(trigger_label(step))}"| {target}')
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """Mermaid entity codes for the characters that would end a quoted label."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("|", "#124;")
