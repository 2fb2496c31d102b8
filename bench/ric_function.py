"""The awslambdaric baseline's function (P1 (b), P1', P6): an S3 client made at import, as
real functions do; ``noop`` does nothing (P6), ``copy`` does the invocation's work (P1').

Run as ``python -m awslambdaric ric_function.noop`` (or ``.copy``) from this folder.
"""

import os
import shlex
from typing import Any

import boto3
from naive_work import copy_invocation

s3 = boto3.client("s3")


def noop(event: Any, context: Any) -> dict[str, Any]:
    """Do nothing."""
    return {}


def copy(event: Any, context: Any) -> dict[str, Any]:
    """List, get, run the copy handler, put: the same work as the bridge's invocation."""
    return copy_invocation(s3, event, shlex.split(os.environ["BENCH_HANDLER"]))
