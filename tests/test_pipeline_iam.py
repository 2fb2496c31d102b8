"""The roles `pipeline render --format sam` computes are enough to run each step, proven on
a moto server that enforces IAM (its own process): each word-count step runs with an
identity holding exactly its rendered S3 statements, and fails without its ListBucket.

(How the server is switched to enforcing IAM: see tests/test_least_privilege.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.pipeline.model import Pipeline, StepConfig, load_pipeline, logical_id
from bridge.pipeline.render_sam import render_sam
from tests.conftest import EXAMPLES, MotoServer, bridge_command, subprocess_env

WORDCOUNT = EXAMPLES / "wordcount" / "pipeline.yaml"
TEXTS = EXAMPLES / "demo_data" / "texts"
JOB = "jobs/demo/"


def set_authentication(server: MotoServer, after_requests: float) -> None:
    """Authenticate and authorize every request after ``after_requests`` more (inf: never)."""
    request = urllib.request.Request(
        f"{server.endpoint}/moto-api/reset-auth",
        data=str(after_requests).encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()


def s3_policy(pipeline: Pipeline, step: StepConfig, drop: str | None = None) -> dict[str, Any]:
    """The S3 statements of the step's rendered role, parameters at their defaults."""
    template = render_sam(pipeline)
    role = template["Resources"][f"{logical_id(step.name)}Role"]
    defaults = {
        f"${{{name}}}": spec.get("Default", "") for name, spec in template["Parameters"].items()
    }
    defaults["${AWS::Partition}"] = "aws"
    statements = []
    for statement in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        if not str(statement["Action"]).startswith("s3:") or statement["Action"] == drop:
            continue
        resources = []
        for resource in statement["Resource"]:
            arn = resource["Fn::Sub"]
            for placeholder, value in defaults.items():
                arn = arn.replace(placeholder, value)
            resources.append(arn)
        statements.append({**statement, "Resource": resources})
    return {"Version": "2012-10-17", "Statement": statements}


@pytest.fixture(scope="module")
def iam_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def wordcount(iam_server: MotoServer) -> Iterator[tuple[Pipeline, Any]]:
    """The job uploaded (manifest first); an admin S3 client; authentication off."""
    set_authentication(iam_server, float("inf"))
    iam_server.reset()
    pipeline = load_pipeline(WORDCOUNT)
    s3 = boto3.client("s3", endpoint_url=iam_server.endpoint, region_name="us-east-1")
    bucket = pipeline.buckets[0]
    s3.create_bucket(Bucket=bucket)
    names = sorted(p.name for p in TEXTS.glob("*.txt"))
    s3.put_object(
        Bucket=bucket,
        Key=f"{JOB}manifest-{len(names)}.json",
        Body=json.dumps({"inputs": names}).encode(),
    )
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"{JOB}input/{name}", Body=(TEXTS / name).read_bytes())
    try:
        yield pipeline, s3
    finally:
        set_authentication(iam_server, float("inf"))


def identity(server: MotoServer, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """An IAM user holding ``policy`` only; its credentials as environment variables."""
    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="step", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def invoke_step(
    server: MotoServer, step: StepConfig, credentials: dict[str, str], keys: list[str]
) -> subprocess.CompletedProcess[str]:
    """``event s3 | invoke`` for ``keys``, configured exactly as ``pipeline env`` prints."""
    bucket = step.spec.on.bucket
    arguments = [a for key in keys for a in ("--key", key)]
    event = subprocess.run(
        [*bridge_command(), "event", "s3", "--bucket", bucket, *arguments],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    env = subprocess_env(AWS_ENDPOINT_URL=server.endpoint, **credentials, **step.variables)
    env.pop("AWS_SESSION_TOKEN", None)  # moto would take it for an STS token it never issued
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [*bridge_command(), "invoke"],
        input=event.stdout, capture_output=True, text=True, timeout=120, env=env,
        cwd=step.workdir,
    )  # fmt: skip


def test_each_step_runs_with_exactly_its_rendered_s3_grants(
    iam_server: MotoServer, wordcount: tuple[Pipeline, Any]
) -> None:
    pipeline, s3 = wordcount
    bucket = pipeline.buckets[0]
    map_step, reduce_step = pipeline.step("map"), pipeline.step("reduce")
    map_keys = identity(iam_server, "map", s3_policy(pipeline, map_step))
    reduce_keys = identity(iam_server, "reduce", s3_policy(pipeline, reduce_step))
    texts = sorted(f"{JOB}input/{p.name}" for p in TEXTS.glob("*.txt"))
    set_authentication(iam_server, 0)

    mapped = invoke_step(iam_server, map_step, map_keys, texts)
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
    counts = [f"{JOB}counts/{Path(key).stem}.json" for key in texts]
    reduced = invoke_step(iam_server, reduce_step, reduce_keys, counts[-1:])
    assert reduced.returncode == 0, reduced.stdout + reduced.stderr

    set_authentication(iam_server, float("inf"))
    total = json.loads(s3.get_object(Bucket=bucket, Key=f"{JOB}result/total.json")["Body"].read())
    assert total["inputs"] == [Path(key).name for key in texts]


def test_the_reduce_fails_without_its_list_bucket_grant(
    iam_server: MotoServer, wordcount: tuple[Pipeline, Any]
) -> None:
    """The grant is needed, not decoration: the gate and the pull list the job folder."""
    pipeline, _ = wordcount
    reduce_step = pipeline.step("reduce")
    keys = identity(iam_server, "reduce", s3_policy(pipeline, reduce_step, drop="s3:ListBucket"))
    set_authentication(iam_server, 0)
    result = invoke_step(iam_server, reduce_step, keys, [f"{JOB}counts/sonnet18.json"])
    assert result.returncode == 1
    assert f"s3:ListBucket denied on bucket {pipeline.buckets[0]}" in result.stdout
