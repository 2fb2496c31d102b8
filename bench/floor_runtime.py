"""F1, the floor of P1' (docs/design.md §13): the least any runtime with the bridge's
libraries does: interpreter start, ``import boto3, pydantic_settings``, one S3 client, then
the same ``GET next``, invocation work and response as baseline (a) (``boto3_runtime``).

The bridge's P1' minus this is what the bridge itself costs above the libraries it loads.
"""

import pydantic_settings  # noqa: F401  # the configuration library the bridge loads
from boto3_runtime import serve

serve()
