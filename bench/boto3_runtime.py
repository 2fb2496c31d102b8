"""Baseline (a) of P1 and P1': ``import boto3; boto3.client('s3')`` as a custom runtime.

The least a Python function on the Runtime API does: import boto3, create the S3 client,
then loop on ``GET next`` (``http.client``, one keep-alive connection), do the invocation's
work (``naive_work.copy_invocation``) and ``POST`` the response. Its first request is the
``GET next`` P1 times; its first response is what P1' times.
"""

import http.client
import json
import os
import shlex

import boto3
from naive_work import copy_invocation


def serve() -> None:
    """Make the S3 client, then answer invocations until killed."""
    s3 = boto3.client("s3")
    handler = shlex.split(os.environ["BENCH_HANDLER"])
    connection = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    base = "/2018-06-01/runtime/invocation/"
    while True:
        connection.request("GET", base + "next")
        answer = connection.getresponse()
        event = json.loads(answer.read())
        request_id = answer.headers["Lambda-Runtime-Aws-Request-Id"]
        result = copy_invocation(s3, event, handler)
        connection.request("POST", f"{base}{request_id}/response", json.dumps(result))
        connection.getresponse().read()


if __name__ == "__main__":
    serve()
