"""The moto server of ``bench/moto_ranged.py``, with SendMessage costing what it costs in SQS.

Run as ``python bench/moto_sqs.py -H 127.0.0.1 -p PORT``. For every message it is sent,
plain moto builds the queue's whole ``attributes`` dictionary to read one entry
(``ContentBasedDeduplication``), and that dictionary holds the approximate message counts,
computed by walking every message in the queue: N messages sent to a queue cost O(N²), and
10,000 backfilled notifications would measure moto, not the sender (P9). Real SQS has no
such cost. This launcher patches only that: while a message is being sent, ``attributes``
holds just the entry sending reads, with moto's own value. ``GetQueueAttributes`` and every
other request are moto's own.
"""

from __future__ import annotations

import threading
from typing import Any

import moto_ranged  # noqa: F401  (its S3 patches apply on import)
from moto.server import main
from moto.sqs.models import Queue, SQSBackend

_sending = threading.local()
_plain_send_message = SQSBackend.send_message
_plain_attributes = Queue.attributes


def _send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
    _sending.active = True
    try:
        return _plain_send_message(self, *args, **kwargs)
    finally:
        _sending.active = False


def _attributes(self: Queue) -> dict[str, Any]:
    if not getattr(_sending, "active", False):
        plain: dict[str, Any] = _plain_attributes.fget(self)  # type: ignore[attr-defined]
        return plain
    if not self.fifo_queue:  # moto lists ContentBasedDeduplication for FIFO queues only
        return {}
    deduplicated = self.content_based_deduplication  # type: ignore[attr-defined]
    return {"ContentBasedDeduplication": str(bool(deduplicated)).lower()}


Queue.attributes = property(_attributes)  # type: ignore[method-assign, assignment]
SQSBackend.send_message = _send_message  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
