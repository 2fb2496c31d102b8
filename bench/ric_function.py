"""The awslambdaric baseline's function (P1 (b), P6): an S3 client made at import, as real
functions do, and a handler that does nothing.

Run as ``python -m awslambdaric ric_function.handler`` from this folder.
"""

from typing import Any

import boto3

s3 = boto3.client("s3")


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Do nothing."""
    return {}
