"""Least privilege, proven on a moto server that enforces IAM (its own process, not shared).

The moto server authorizes every request signed with an access key it issued against that
identity's IAM policies once authentication is switched on (``INITIAL_NO_AUTH_ACTION_COUNT``,
set at run time through ``/moto-api/reset-auth``, as moto's own
``set_initial_no_auth_action_count`` does in server mode). The identity here may only
``s3:GetObject`` on ``source/*`` and ``s3:GetObject`` + ``s3:PutObject`` on ``target/*``:
what a classic per-object function is granted.

The SAM template's function role, resolved for each ``PullScope``, is run the same way.

Where moto differs from S3: for a missing key without ``s3:ListBucket``, S3 answers 403
while moto answers 404 (it authorizes before looking the key up; asserted below). The 403
reading of ``SKIP_UNCHANGED`` is covered by
``test_pull_scope.test_stored_etags_treat_403_and_404_as_absent``.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.helpers import handler
from tests.test_deploy import TEMPLATE, _CfnLoader, _condition

SOURCE = "source"
TARGET = "target"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{SOURCE}/*"},
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{TARGET}/*",
        },
    ],
}


def set_authentication(server: MotoServer, after_requests: float) -> None:
    """Authenticate and authorize every request after ``after_requests`` more (inf: never)."""
    request = urllib.request.Request(
        f"{server.endpoint}/moto-api/reset-auth",
        data=str(after_requests).encode(),
        headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="module")
def iam_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


def template_policy(parameters: dict[str, str]) -> dict[str, Any]:
    """The S3 statements of deploy/template.yaml's function role, resolved for ``parameters``."""
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    values = {**parameters, "AWS::Partition": "aws"}

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (resolve(item) for item in node) if r is not None]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return None if node["Ref"] == "AWS::NoValue" else values.get(node["Ref"], "")
        if set(node) == {"Fn::If"}:
            condition, then, otherwise = node["Fn::If"]
            return resolve(then if _condition(template, condition, parameters) else otherwise)
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m[1], ""), node["Fn::Sub"])
        return {key: resolve(value) for key, value in node.items()}

    [policy] = template["Resources"]["FunctionRole"]["Properties"]["Policies"]
    statements = resolve(policy["PolicyDocument"]["Statement"])
    s3 = [s for s in statements if all(a.startswith("s3:") for a in _actions(s))]
    return {"Version": "2012-10-17", "Statement": s3}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


@pytest.fixture
def identity(iam_server: MotoServer) -> Iterator[Callable[[dict[str, Any]], dict[str, str]]]:
    """Make buckets, objects and an identity holding a policy; auth on until the test ends."""

    def make(policy: dict[str, Any]) -> dict[str, str]:
        set_authentication(iam_server, float("inf"))
        iam_server.reset()
        s3 = boto3.client("s3", endpoint_url=iam_server.endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=SOURCE)
        s3.create_bucket(Bucket=TARGET)
        for index in range(20):  # neighbours a prefix-scope step would have to list
            s3.put_object(Bucket=SOURCE, Key=f"photo-{index}.jpg", Body=b"n")
        s3.put_object(Bucket=SOURCE, Key="photo.jpg", Body=b"jpeg bytes")
        iam = boto3.client("iam", endpoint_url=iam_server.endpoint, region_name="us-east-1")
        iam.create_user(UserName="thumbnailer")
        iam.put_user_policy(
            UserName="thumbnailer", PolicyName="step", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="thumbnailer")["AccessKey"]
        set_authentication(iam_server, 0)
        return {
            "AWS_ENDPOINT_URL": iam_server.endpoint,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    try:
        yield make
    finally:
        set_authentication(iam_server, float("inf"))


@pytest.fixture
def limited(identity: Callable[[dict[str, Any]], dict[str, str]]) -> dict[str, str]:
    """The per-object identity of ``POLICY``: its credentials, authentication on."""
    return identity(POLICY)


def identity_env(credentials: dict[str, str], **extra: str) -> dict[str, str]:
    """The test environment with the limited identity's keys (and no session token)."""
    env = subprocess_env(**credentials, **extra)
    env.pop("AWS_SESSION_TOKEN", None)  # moto would take it for an STS token it never issued
    return env


def invoke(credentials: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
    """``event s3 | invoke`` for ``photo.jpg`` at the top of the source bucket."""
    event = subprocess.run(
        [*bridge_command(), "event", "s3", "--bucket", SOURCE, "--key", "photo.jpg"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return subprocess.run(
        [*bridge_command(), "invoke", "--", *handler("copier")],
        input=event.stdout, capture_output=True, text=True, timeout=120,
        env=identity_env(credentials, TARGET_BUCKET=TARGET, **env),
    )  # fmt: skip


def client(credentials: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=credentials["AWS_ENDPOINT_URL"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=None,
        region_name="us-east-1",
    )


def test_the_server_enforces_the_policy(limited: dict[str, str]) -> None:
    s3 = client(limited)
    assert s3.get_object(Bucket=SOURCE, Key="photo.jpg")["Body"].read() == b"jpeg bytes"
    denials = []
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_objects_v2", {"Bucket": SOURCE}),
        ("put_object", {"Bucket": SOURCE, "Key": "x", "Body": b"x"}),
        ("list_objects_v2", {"Bucket": TARGET}),
    ]
    for operation, arguments in calls:
        with pytest.raises(ClientError) as denied:
            getattr(s3, operation)(**arguments)
        denials.append(denied.value.response["Error"]["Code"])
    assert denials == ["AccessDenied"] * 3
    with pytest.raises(ClientError) as missing:  # S3 would say 403 here: no s3:ListBucket
        s3.head_object(Bucket=TARGET, Key="no/such/key")
    assert missing.value.response["Error"]["Code"] == "404"


def test_events_scope_runs_end_to_end_with_get_and_put_only(limited: dict[str, str]) -> None:
    result = invoke(limited, PULL_SCOPE="events")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    s3 = client(limited)
    output = s3.get_object(Bucket=TARGET, Key="out/photo.jpg")
    assert output["Body"].read() == b"jpeg bytes"
    assert output["Metadata"] == {"bridge-depth": "1"}

    # Redelivered: SKIP_UNCHANGED learns the stored ETag with HeadObject (s3:GetObject).
    again = invoke(limited, PULL_SCOPE="events")
    assert again.returncode == 0, again.stderr
    assert "unchanged=1" in again.stderr and "uploaded=0" in again.stderr
    head = s3.head_object(Bucket=TARGET, Key="out/photo.jpg")
    assert head["LastModified"] == output["LastModified"]


def test_prefix_scope_fails_naming_the_denied_action_and_bucket(limited: dict[str, str]) -> None:
    result = invoke(limited)  # PULL_SCOPE=prefix: lists the source bucket

    assert result.returncode == 1
    error = json.loads(result.stdout)
    message = error["errorMessage"]
    assert "\n" not in message
    assert "s3:ListBucket denied on bucket source" in message, message
    with pytest.raises(ClientError):
        client(limited).head_object(Bucket=TARGET, Key="out/photo.jpg")


@pytest.mark.parametrize("scope", ["events", "prefix"])
def test_the_sam_templates_role_is_enough_for_its_scope(
    iam_server: MotoServer, identity: Callable[[dict[str, Any]], dict[str, str]], scope: str
) -> None:
    """The function role of deploy/template.yaml, resolved for each PullScope, runs the step."""
    policy = template_policy(
        {"SourceBucketName": SOURCE, "TargetBucketName": TARGET, "PullScope": scope}
    )
    granted = {action for statement in policy["Statement"] for action in _actions(statement)}
    assert ("s3:ListBucket" in granted) is (scope == "prefix")
    credentials = identity(policy)

    result = invoke(credentials, PULL_SCOPE=scope)

    assert result.returncode == 0, result.stderr
    set_authentication(iam_server, float("inf"))  # read back as the account (the role may not)
    s3 = boto3.client("s3", endpoint_url=iam_server.endpoint, region_name="us-east-1")
    assert s3.get_object(Bucket=TARGET, Key="out/photo.jpg")["Body"].read() == b"jpeg bytes"
