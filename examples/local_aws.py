"""A local stand-in for AWS for the demo, the tests and the benchmarks.

The moto server logic lives in the package (``bridge.local_aws``, also behind
``pipeline up --local``); this module keeps the scripts' imports short.
"""

from __future__ import annotations

from bridge.local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MotoServer, free_port

__all__ = ["FAKE_AWS_ENV", "LEAKY_VARIABLES", "MotoServer", "free_port"]
