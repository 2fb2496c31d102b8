"""`pipeline render`: the SAM template (cfn-lint clean, least privilege per step,
notifications with the queue policy S3 needs) and the Kubernetes manifests; and
`pipeline graph`'s Mermaid text for the examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import main
from bridge.pipeline.model import load_pipeline
from bridge.pipeline.render_sam import render_sam
from tests.conftest import EXAMPLES, REPO
from tests.pipeline_files import pipeline, step

EXAMPLE_FILES = sorted(EXAMPLES.glob("*/pipeline.yaml"))
QUEUE_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
}
# cfn-lint's exit code is a bitmask: 2 errors, 4 warnings, 8 informational (1: it failed).
CFN_LINT_ERROR = 2


def rendered(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> str:
    assert main(["pipeline", "render", str(path), *options]) == 0
    return capsys.readouterr().out


def cfn_lint_stdin(template: str) -> subprocess.CompletedProcess[str]:
    """cfn-lint with the template on standard input, as the docs show."""
    script = Path(sys.executable).with_name("cfn-lint")
    return subprocess.run(
        [str(script), "--format", "parseable"],
        input=template,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def s3_grants(template: dict[str, Any], step_name: str) -> set[tuple[str, str]]:
    """(action, resource) of the step role's S3 statements, ARNs as their Fn::Sub text."""
    role = template["Resources"][f"{step_name}Role"]
    grants = set()
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                if action.startswith("s3:"):
                    for resource in statement["Resource"]:
                        grants.add(
                            (
                                action,
                                resource["Fn::Sub"].removeprefix("arn:${AWS::Partition}:s3:::"),
                            )
                        )
    return grants


def test_the_examples_exist() -> None:
    assert [p.parent.name for p in EXAMPLE_FILES][:1] != [], "no example pipeline files"
    assert EXAMPLES / "wordcount" / "pipeline.yaml" in EXAMPLE_FILES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.parent.name)
def test_rendered_sam_of_the_examples_is_cfn_lint_clean(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    template = rendered(capsys, path, "--format", "sam")
    result = cfn_lint_stdin(template)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_on_stdin_is_not_vacuous(capsys: pytest.CaptureFixture[str]) -> None:
    template = rendered(capsys, EXAMPLES / "wordcount" / "pipeline.yaml", "--format", "sam")
    broken = template.replace("PackageType: Image", "PackageTyp: Image")
    result = cfn_lint_stdin(broken)
    assert result.returncode & CFN_LINT_ERROR and "PackageTyp" in result.stdout


def test_wordcount_steps_get_exactly_what_they_need(capsys: pytest.CaptureFixture[str]) -> None:
    text = rendered(capsys, EXAMPLES / "wordcount" / "pipeline.yaml", "--format", "sam")
    template = yaml.safe_load(text)
    bucket = "${WordcountDataBucketName}"
    objects = f"{bucket}/*"
    # Reduce, prefix scope: list the group prefix; same bucket in and out, so the listing
    # also gives SKIP_UNCHANGED its ETags. Both remove outputs (and lineage records).
    expected = {
        ("s3:GetObject", objects),
        ("s3:ListBucket", bucket),
        ("s3:PutObject", objects),
        ("s3:AbortMultipartUpload", objects),
        ("s3:DeleteObject", objects),
    }
    assert s3_grants(template, "Reduce") == expected
    # Map, events scope without a filter: no listing at all (GetObject also covers the
    # HeadObject of SKIP_UNCHANGED).
    assert s3_grants(template, "Map") == expected - {("s3:ListBucket", bucket)}
    resources = template["Resources"]
    for part in ("Map", "Reduce"):
        statements = resources[f"{part}Role"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
        queue = [s for s in statements if s["Sid"] == "ConsumeQueue"]
        assert set(queue[0]["Action"]) == QUEUE_ACTIONS
        assert queue[0]["Resource"] == {"Fn::GetAtt": [f"{part}Queue", "Arn"]}
        logs = [s for s in statements if s["Sid"] == "WriteLogs"]
        assert logs[0]["Resource"] == {"Fn::GetAtt": [f"{part}LogGroup", "Arn"]}
        # the S3 actions (no ListBucket for the map), the queue, the logs: nothing else
        assert len(statements) == (6 if part == "Map" else 7)


def test_sam_wires_queue_dlq_notification_and_policy(capsys: pytest.CaptureFixture[str]) -> None:
    template = yaml.safe_load(
        rendered(capsys, EXAMPLES / "wordcount" / "pipeline.yaml", "--format", "sam")
    )
    resources = template["Resources"]
    assert template["Parameters"]["ImageUri"]["Type"] == "String"
    function = resources["MapFunction"]["Properties"]
    assert function["PackageType"] == "Image" and function["ImageUri"] == {"Ref": "ImageUri"}
    assert function["ImageConfig"]["Command"] == ["python", "map.py"]
    assert (
        function["Environment"]["Variables"]
        == load_pipeline(EXAMPLES / "wordcount" / "pipeline.yaml").step("map").variables
    )
    event = function["Events"]["Queue"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Queue"] == {"Fn::GetAtt": ["MapQueue", "Arn"]}
    queue = resources["MapQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["MapDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    policy = resources["MapQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "s3.amazonaws.com"}
    assert policy["Action"] == "sqs:SendMessage"
    assert policy["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${WordcountDataBucketName}"
    }
    bucket = resources["WordcountDataBucket"]
    assert set(bucket["DependsOn"]) == {"MapQueuePolicy", "ReduceQueuePolicy"}
    notifications = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    # Both steps remove outputs: each gets its removals as well as its creations.
    rules = {
        "Map": [{"Name": "prefix", "Value": "jobs/"}, {"Name": "suffix", "Value": ".txt"}],
        "Reduce": [{"Name": "prefix", "Value": "jobs/"}, {"Name": "suffix", "Value": ".json"}],
    }
    assert notifications == [
        {
            "Event": event,
            "Queue": {"Fn::GetAtt": [f"{step}Queue", "Arn"]},
            "Filter": {"S3Key": {"Rules": rules[step]}},
        }
        for step in ("Map", "Reduce")
        for event in ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Per-object step to another bucket: no ListBucket anywhere; HeadObject on the target.
        (
            {"pull": {"scope": "events"}, "to": "outbox"},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:PutObject", "${OutboxBucketName}/*"),
                ("s3:AbortMultipartUpload", "${OutboxBucketName}/*"),
                ("s3:GetObject", "${OutboxBucketName}/*"),
            },
        ),
        # ... with SKIP_UNCHANGED off: the target is only written.
        (
            {"pull": {"scope": "events"}, "to": "outbox", "env": {"SKIP_UNCHANGED": "false"}},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:PutObject", "${OutboxBucketName}/*"),
                ("s3:AbortMultipartUpload", "${OutboxBucketName}/*"),
            },
        ),
        # ... with a filter: the filter sees the listing of the source.
        (
            {"pull": {"scope": "events"}, "to": "outbox", "filter": "true"},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:ListBucket", "${InboxBucketName}"),
                ("s3:PutObject", "${OutboxBucketName}/*"),
                ("s3:AbortMultipartUpload", "${OutboxBucketName}/*"),
                ("s3:GetObject", "${OutboxBucketName}/*"),
            },
        ),
        # Prefix scope to another bucket: list the source; list the target for its ETags.
        (
            {"to": "outbox"},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:ListBucket", "${InboxBucketName}"),
                ("s3:PutObject", "${OutboxBucketName}/*"),
                ("s3:AbortMultipartUpload", "${OutboxBucketName}/*"),
                ("s3:ListBucket", "${OutboxBucketName}"),
            },
        ),
        # A target bucket the pipeline does not own is named as it is.
        (
            {"pull": {"scope": "events"}, "to": "elsewhere"},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:PutObject", "elsewhere/*"),
                ("s3:AbortMultipartUpload", "elsewhere/*"),
                ("s3:GetObject", "elsewhere/*"),
            },
        ),
        # remove-outputs: read records and ETags, delete outputs and records, on the target.
        (
            {"pull": {"scope": "events"}, "to": "outbox", "on_delete": "remove-outputs"},
            {
                ("s3:GetObject", "${InboxBucketName}/*"),
                ("s3:PutObject", "${OutboxBucketName}/*"),
                ("s3:AbortMultipartUpload", "${OutboxBucketName}/*"),
                ("s3:GetObject", "${OutboxBucketName}/*"),
                ("s3:DeleteObject", "${OutboxBucketName}/*"),
            },
        ),
    ],
    ids=[
        "events",
        "events-no-skip",
        "events-filter",
        "prefix-other-target",
        "outside-target",
        "remove-outputs",
    ],
)
def test_roles_follow_scope_filter_target_and_skip_unchanged(
    tmp_path: Path, fields: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    piped = pipeline(tmp_path, step("copy", bucket="inbox", **fields), buckets=["inbox", "outbox"])
    assert s3_grants(render_sam(piped), "Copy") == expected


def test_workers_become_reserved_concurrency_only_when_given(tmp_path: Path) -> None:
    piped = pipeline(
        tmp_path,
        step("a", bucket="inbox", to="outbox", on_prefix="a/", workers=3),
        step("b", bucket="inbox", to="outbox", on_prefix="b/"),
        buckets=["inbox", "outbox"],
    )
    resources = render_sam(piped)["Resources"]
    assert resources["AFunction"]["Properties"]["ReservedConcurrentExecutions"] == 3
    assert "ReservedConcurrentExecutions" not in resources["BFunction"]["Properties"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.parent.name)
def test_k8s_has_a_consume_deployment_and_a_scaled_object_per_step(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    text = rendered(
        capsys, path, "--format", "k8s", "--image", "registry/x:1", "--region", "eu-west-1"
    )
    documents = [d for d in yaml.safe_load_all(text) if d]
    piped = load_pipeline(path)
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    scaled = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ScaledObject"}
    names = {f"{piped.name}-{s.name}" for s in piped.steps}
    assert set(deployments) == names and set(scaled) == names
    for config in piped.steps:
        name = f"{piped.name}-{config.name}"
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "registry/x:1"
        assert container["args"][:5] == [
            "consume",
            "--queue-url",
            "$(QUEUE_URL)",
            "--workers",
            str(config.spec.workers),
        ]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["QUEUE_URL"] == f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"
        assert {k: env[k] for k in config.variables} == config.variables
        trigger = scaled[name]["spec"]["triggers"][0]
        assert trigger["type"] == "aws-sqs-queue"
        assert trigger["metadata"]["queueURLFromEnv"] == "QUEUE_URL"
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
    grace = deployments[next(iter(names))]["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] >= 300 + 25


def mermaid_graph(
    capsys: pytest.CaptureFixture[str], path: Path
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """(node id -> label, [(source, label, target)]) of ``pipeline graph``."""
    assert main(["pipeline", "graph", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flowchart LR"
    nodes, edges = {}, []
    for line in lines[1:]:
        if "-->" in line:
            source, rest = line.strip().split(' -->|"', 1)
            label, target = rest.split('"| ')
            edges.append((source, label, target))
        else:
            node, label = line.strip().split('[("')
            nodes[node] = label.removesuffix('")]')
    return nodes, edges


def test_graph_of_wordcount(capsys: pytest.CaptureFixture[str]) -> None:
    nodes, edges = mermaid_graph(capsys, EXAMPLES / "wordcount" / "pipeline.yaml")
    assert nodes == {"b0": "wordcount-data"}
    assert edges == [
        ("b0", "map: jobs/*.txt → counts/", "b0"),
        ("b0", "reduce: jobs/*.json → result/", "b0"),
    ]


def test_graph_draws_a_step_between_two_buckets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    piped = pipeline(tmp_path, step("thumbs", bucket="uploads", to="thumbnails", on_suffix=".jpg"))
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "pipeline": "p",
                "buckets": ["uploads", "thumbnails"],
                "steps": [piped.steps[0].spec.model_dump(exclude_defaults=True)],
            }
        )
    )
    nodes, edges = mermaid_graph(capsys, path)
    assert nodes == {"b0": "uploads", "b1": "thumbnails"}
    assert edges == [("b0", "thumbs: *.jpg", "b1")]


def test_the_docs_show_the_current_wordcount_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "graph", str(EXAMPLES / "wordcount" / "pipeline.yaml")]) == 0
    graph = capsys.readouterr().out
    for doc in (REPO / "README.md", REPO / "docs" / "pipelines.md"):
        assert f"```mermaid\n{graph}```" in doc.read_text(encoding="utf-8"), doc


def test_thumbnails_step_gets_no_listing_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    """Per-object step to another bucket: read the upload, write and HEAD the outputs."""
    template = yaml.safe_load(
        rendered(capsys, EXAMPLES / "thumbnails" / "pipeline.yaml", "--format", "sam")
    )
    uploads, processed = "${UploadsBucketName}", "${ProcessedImagesBucketName}"
    assert s3_grants(template, "Thumbnails") == {
        ("s3:GetObject", f"{uploads}/*"),
        ("s3:PutObject", f"{processed}/*"),
        ("s3:AbortMultipartUpload", f"{processed}/*"),
        ("s3:GetObject", f"{processed}/*"),
    }
    notification = template["Resources"]["UploadsBucket"]["Properties"][
        "NotificationConfiguration"
    ]["QueueConfigurations"]
    assert notification == [
        {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["ThumbnailsQueue", "Arn"]}}
    ]
    assert (
        "NotificationConfiguration"
        not in (template["Resources"]["ProcessedImagesBucket"]["Properties"])
    )


def test_graph_of_thumbnails(capsys: pytest.CaptureFixture[str]) -> None:
    nodes, edges = mermaid_graph(capsys, EXAMPLES / "thumbnails" / "pipeline.yaml")
    assert nodes == {"b0": "uploads", "b1": "processed-images"}
    assert edges == [("b0", "thumbnails: * → thumbnails/, metadata/", "b1")]


def test_graph_of_tenants(capsys: pytest.CaptureFixture[str]) -> None:
    nodes, edges = mermaid_graph(capsys, EXAMPLES / "tenants" / "pipeline.yaml")
    assert nodes == {"b0": "tenants"}
    assert edges == [("b0", "tenants: *.csv → silver/", "b0")]


def test_sam_has_the_role_a_batch_operations_job_assumes_to_invoke_the_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    wordcount = EXAMPLES / "wordcount" / "pipeline.yaml"
    template = yaml.safe_load(rendered(capsys, wordcount, "--format", "sam"))

    role = template["Resources"]["BatchOperationsRole"]
    assert template["Parameters"]["BatchOperationsBucketName"]["Default"] == ""
    assert template["Conditions"][role["Condition"]] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "BatchOperationsBucketName"}, ""]}]
    }
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    [policy] = role["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["InvokeFunctions"]["Action"] == "lambda:InvokeFunction"
    assert statements["InvokeFunctions"]["Resource"] == [
        {"Fn::GetAtt": ["MapFunction", "Arn"]},
        {"Fn::Sub": "${MapFunction.Arn}:*"},
        {"Fn::GetAtt": ["ReduceFunction", "Arn"]},
        {"Fn::Sub": "${ReduceFunction.Arn}:*"},
    ]
    objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}/*"}
    assert statements["ReadManifests"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert statements["ReadManifests"]["Resource"] == objects
    assert statements["WriteReports"] == {
        "Sid": "WriteReports",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": objects,
    }
    assert set(statements) == {"InvokeFunctions", "ReadManifests", "WriteReports", "LocateBucket"}
    output = template["Outputs"]["BatchOperationsRoleArn"]
    assert output["Condition"] == role["Condition"]
    # The steps' own roles are untouched: no step may invoke another.
    assert "lambda:" not in repr(template["Resources"]["MapRole"])
