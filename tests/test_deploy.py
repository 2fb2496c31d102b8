"""The deployment artifacts: the SAM template (deploy/template.yaml) and the Kubernetes
manifest (deploy/kubernetes/consumer.yaml).

The template must pass cfn-lint and keep the contract the bridge relies on: partial batch
responses enabled, a DLQ behind the queue, a visibility timeout of at least 6 x the function
timeout, a container-image function, least-privilege IAM, and every configuration variable
mapped to a parameter. The manifest must run ``consume`` the documented way, safely.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import parse_command_line
from bridge.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deploy" / "template.yaml"
MANIFEST = REPO / "deploy" / "kubernetes" / "consumer.yaml"

# The configuration variables a deployment sets (README, Configuration).
CONFIG_VARIABLES = (
    "MATCH_KEY",
    "MATCH_EVENTS",
    "PULL_PARENT_DIRS",
    "PULL_MATCH_KEYS",
    "PULL_SCOPE",
    "EXECUTION_FILTER_EXPR",
    "TARGET_BUCKET",
    "HANDLER_TIMEOUT",
    "TRANSFER_CONCURRENCY",
    "SKIP_UNCHANGED",
    "MAX_CHAIN_DEPTH",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "METRICS",
    "ON_DELETE",
    "LINEAGE",
    "STEP_NAME",
)

# Every action the function's role may perform, and nothing else.
ALLOWED_ACTIONS = {
    "s3:ListBucket",
    "s3:GetObject",  # also HeadObject
    "s3:PutObject",  # single and multipart uploads, with metadata
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",  # with OnDelete=remove-outputs only
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",  # with Tracing=Active only
    "xray:PutTelemetryRecords",
}
# X-Ray actions take no resource-level permission: "*" is their only possible resource.
WILDCARD_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

# cfn-lint's exit code is a bitmask: 2 errors, 4 warnings, 8 informational (1: it failed).
CFN_LINT_WARNING, CFN_LINT_INFO = 4, 8

# `consume` drain on SIGTERM, beyond one visibility timeout: the long poll in progress
# (--wait-time, 20 s by default) and the 5 s between a handler's SIGTERM and SIGKILL.
DRAIN_MARGIN = 20 + 5

EXPECTED_CONSUME_ARGS = [
    "consume",
    "--queue-url",
    "$(QUEUE_URL)",
    "--workers",
    "2",
    "--",
    "python",
    "handler.py",
]


# --- loading ---------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader for CloudFormation's short-form tags: ``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": "s"}``."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


@pytest.fixture(scope="module")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    functions = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == 1, "exactly one function"
    properties: dict[str, Any] = functions[0]["Properties"]
    return properties


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict[str, Any]]:
    """The manifest's objects by kind (each kind appears once)."""
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents), "one object of each kind"
    return by_kind


def _run_cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("cfn-lint")
    launcher = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
    )
    return subprocess.run(
        [*launcher, "--format", "parseable", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement the role may hold (a conditional one counted as granted)."""
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                _, granted, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
                yield granted
            else:
                yield statement


def _conditional_statements(role: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Sid -> (condition name, statement) of the statements granted under a condition."""
    found = {}
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                condition, granted, _ = statement["Fn::If"]
                found[granted["Sid"]] = (condition, granted)
    return found


def _condition(template: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    """Evaluate condition ``name`` of the template for ``parameters`` (others: defaults)."""

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            ref = node["Ref"]
            return parameters.get(ref, str(template["Parameters"][ref].get("Default", "")))
        return node

    def truth(node: Any) -> bool:
        [(function, arguments)] = node.items()
        if function == "Fn::Equals":
            return bool(value(arguments[0]) == value(arguments[1]))
        if function == "Fn::Not":
            return not truth(arguments[0])
        if function == "Fn::Or":
            return any(truth(a) for a in arguments)
        if function == "Fn::And":
            return all(truth(a) for a in arguments)
        if function == "Condition":
            return truth(template["Conditions"][arguments])
        raise AssertionError(f"unexpected condition function {function}")

    return truth(template["Conditions"][name])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resolve_defaults(template: dict[str, Any], value: Any) -> str:
    """The value an environment variable gets when every parameter keeps its default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(template["Parameters"][value["Ref"]].get("Default", ""))
    assert isinstance(value, str | int | float), f"unexpected environment value {value!r}"
    return str(value)


# --- cfn-lint ----------------------------------------------------------------------------


def test_cfn_lint_reports_no_errors() -> None:
    result = _run_cfn_lint(TEMPLATE)
    not_failing = CFN_LINT_WARNING | CFN_LINT_INFO
    assert result.returncode & ~not_failing == 0, (
        f"cfn-lint exit code {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def test_cfn_lint_validates_the_serverless_function(tmp_path: Path) -> None:
    """The lint above is not vacuous: a misspelt function property is an error."""
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "      EphemeralStorage:\n" in text
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace("      EphemeralStorage:\n", "      EphemeralStorag:\n"))
    result = _run_cfn_lint(broken)
    assert result.returncode & 2, result.stdout + result.stderr
    assert "EphemeralStorag" in result.stdout


# --- the template's contract --------------------------------------------------------------


def test_is_a_sam_template_of_a_container_image_function(
    template: dict[str, Any], function: dict[str, Any]
) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert function["PackageType"] == "Image"
    assert function["ImageUri"] == {"Ref": "ImageUri"}
    assert template["Parameters"]["ImageUri"].get("Default") is None, "no default image"
    # A zip-package function's properties would make no sense here.
    assert not {"Runtime", "Handler", "CodeUri", "InlineCode"} & set(function)
    for name, parameter in (("MemorySize", "MemorySize"), ("Timeout", "FunctionTimeout")):
        assert function[name] == {"Ref": parameter}
    assert function["EphemeralStorage"] == {"Size": {"Ref": "EphemeralStorageSize"}}


def test_sqs_event_source_reports_batch_item_failures(function: dict[str, Any]) -> None:
    events = list(function["Events"].values())
    assert len(events) == 1
    (event,) = events
    assert event["Type"] == "SQS"
    properties = event["Properties"]
    assert properties["Queue"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == {"Ref": "BatchSize"}
    assert properties["MaximumBatchingWindowInSeconds"] == {"Ref": "MaximumBatchingWindowInSeconds"}


def test_queue_redrives_failed_messages_to_a_dead_letter_queue(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    queue, dlq = resources["Queue"], resources["DeadLetterQueue"]
    assert queue["Type"] == dlq["Type"] == "AWS::SQS::Queue"
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert template["Parameters"]["MaxReceiveCount"]["MinValue"] >= 1
    # A standard queue keeps the original enqueue time in the DLQ: it must keep longer.
    retention = queue["Properties"]["MessageRetentionPeriod"]
    assert dlq["Properties"]["MessageRetentionPeriod"] > retention


def test_visibility_timeout_is_six_times_the_function_timeout_plus_batching_window(
    template: dict[str, Any], resources: dict[str, Any], function: dict[str, Any]
) -> None:
    assert function["Timeout"] == {"Ref": "FunctionTimeout"}
    visibility = resources["Queue"]["Properties"]["VisibilityTimeout"]
    assert visibility == {
        "Fn::FindInMap": ["QueueVisibilityTimeout", {"Ref": "FunctionTimeout"}, "Seconds"]
    }
    timeouts = template["Parameters"]["FunctionTimeout"]["AllowedValues"]
    mapping = template["Mappings"]["QueueVisibilityTimeout"]
    assert set(mapping) == {str(t) for t in timeouts}, "one mapping entry per allowed timeout"
    longest_window = template["Parameters"]["MaximumBatchingWindowInSeconds"]["MaxValue"]
    for timeout in timeouts:
        seconds = mapping[str(timeout)]["Seconds"]
        assert seconds >= 6 * timeout + longest_window, f"FunctionTimeout {timeout}"
        assert seconds <= 43200, "SQS's maximum visibility timeout"
    assert max(timeouts) <= 900, "Lambda's maximum timeout"
    # The rule is written down where users choose the timeout and read the result.
    assert "6 x timeout + 300 s" in template["Parameters"]["FunctionTimeout"]["Description"]
    output = template["Outputs"]["QueueVisibilityTimeout"]
    assert output["Value"] == visibility
    assert "6 x FunctionTimeout + 300" in output["Description"]


def test_bucket_notifies_the_queue_once_its_policy_allows_s3(
    resources: dict[str, Any],
) -> None:
    bucket = resources["SourceBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["Condition"] == "CreateBucket"
    assert "QueuePolicy" in _as_list(bucket["DependsOn"])
    assert bucket["Properties"]["BucketName"] == {"Ref": "SourceBucketName"}
    notification, _removals = bucket["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert notification["Queue"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert notification["Event"].startswith("s3:ObjectCreated:")
    filters = repr(notification["Filter"])
    assert "'Ref': 'NotificationPrefix'" in filters
    assert "'Ref': 'NotificationSuffix'" in filters

    policy = resources["QueuePolicy"]
    assert policy["Properties"]["Queues"] == [{"Ref": "Queue"}]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    conditions = {
        key: value for test in statement["Condition"].values() for key, value in test.items()
    }
    assert conditions["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${SourceBucketName}"
    }
    assert conditions["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_function_role_is_least_privilege(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    # Its own role: SAM's generated one would add policies with "Resource": "*".
    assert function["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
    assert "Policies" not in function
    role = resources["FunctionRole"]
    assert role["Type"] == "AWS::IAM::Role"
    assert "ManagedPolicyArns" not in role["Properties"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}

    granted: dict[str, list[Any]] = {}
    for statement in _statements(role):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = _as_list(statement["Action"])
        for action in actions:
            assert "*" not in action, f"wildcard action {action}"
            granted.setdefault(action, []).extend(_as_list(statement["Resource"]))
        for resource in _as_list(statement["Resource"]):
            allowed = set(actions) <= WILDCARD_RESOURCE_ACTIONS
            assert resource != "*" or allowed, f"Resource '*' for {actions}"
    assert set(granted) == ALLOWED_ACTIONS

    queue_arn = {"Fn::GetAtt": ["Queue", "Arn"]}
    for action in ALLOWED_ACTIONS:
        if action.startswith("sqs:"):
            assert granted[action] == [queue_arn], action
        if action.startswith("logs:"):
            assert granted[action] == [{"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}], action
    assert granted["s3:GetObject"][:2] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${SourceBucketName}/${AccessPrefix}*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${TargetBucketName}/${AccessPrefix}*"},
    ]
    writes = repr(granted["s3:PutObject"])
    assert "${TargetBucketName}/${AccessPrefix}*" in writes
    assert "${SourceBucketName}/${AccessPrefix}*" in writes  # TARGET_BUCKET empty: the source
    lineage = "/.s3-event-bridge/lineage/*"
    assert [r for r in _as_list(granted["s3:AbortMultipartUpload"]) if lineage in repr(r)] == []
    assert granted["s3:AbortMultipartUpload"] == granted["s3:PutObject"][:1]
    removes = repr(granted["s3:DeleteObject"])
    assert "${TargetBucketName}/${AccessPrefix}*" in removes and lineage in removes
    listed = repr(granted["s3:ListBucket"])
    assert "s3:::${SourceBucketName}'" in listed and "s3:::${TargetBucketName}'" in listed
    # The function logs into the group the role may write to.
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionLogGroup"}


@pytest.mark.parametrize(
    ("scope", "filter_expr", "target", "skip", "lists", "reads_target"),
    [
        ("", "", "", "", True, False),  # the bridge's default scope: prefix
        ("prefix", "", "dst", "", True, False),
        ("events", "", "dst", "", False, True),
        ("events", "", "dst", "false", False, False),  # no SKIP_UNCHANGED: no HeadObject
        ("events", "", "", "", False, False),  # same bucket: GetObject is already granted
        ("events", "length > 1", "dst", "", True, True),  # a filter needs the listing
    ],
)
def test_list_bucket_only_when_the_bridge_lists(
    template: dict[str, Any],
    resources: dict[str, Any],
    scope: str,
    filter_expr: str,
    target: str,
    skip: str,
    lists: bool,
    reads_target: bool,
) -> None:
    conditional = _conditional_statements(resources["FunctionRole"])
    parameters = {
        "PullScope": scope,
        "ExecutionFilterExpr": filter_expr,
        "TargetBucketName": target,
        "SkipUnchanged": skip,
    }
    condition, statement = conditional["ListBuckets"]
    assert statement["Action"] == "s3:ListBucket"
    assert _condition(template, condition, parameters) is lists
    condition, statement = conditional["ReadTargetObjects"]
    assert statement["Action"] == "s3:GetObject"
    assert "${TargetBucketName}/${AccessPrefix}*" in repr(statement["Resource"])
    assert _condition(template, condition, parameters) is reads_target
    # Nothing else is conditional: reads of the source and writes of the target always hold.
    assert set(conditional) == {
        "ListBuckets",
        "ReadTargetObjects",
        "WriteTraces",
        "WriteLineageRecords",
        "RemoveTargetObjects",
    }


@pytest.mark.parametrize(
    ("on_delete", "lineage", "records", "removes"),
    [
        ("", "", False, False),  # the default: keep, no records, no deletions
        ("keep", "on", True, False),
        ("remove-outputs", "", True, True),
        ("remove-outputs", "on", True, True),
    ],
)
def test_deletes_only_with_remove_outputs_and_writes_records_only_with_lineage(
    template: dict[str, Any],
    resources: dict[str, Any],
    on_delete: str,
    lineage: str,
    records: bool,
    removes: bool,
) -> None:
    conditional = _conditional_statements(resources["FunctionRole"])
    parameters = {"OnDelete": on_delete, "Lineage": lineage}
    condition, statement = conditional["WriteLineageRecords"]
    assert statement["Action"] == "s3:PutObject"
    assert ".s3-event-bridge/lineage/*" in repr(statement["Resource"])
    assert _condition(template, condition, parameters) is records
    condition, statement = conditional["RemoveTargetObjects"]
    assert statement["Action"] == ["s3:GetObject", "s3:DeleteObject"]
    assert _condition(template, condition, parameters) is removes
    # The bucket notifies the removals exactly when the function follows them.
    configurations = resources["SourceBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    (removals,) = [c for c in configurations if "Fn::If" in c]
    condition, notification, _ = removals["Fn::If"]
    assert notification["Event"] == "s3:ObjectRemoved:*"
    assert _condition(template, condition, parameters) is removes


def test_every_configuration_variable_is_a_parameter(
    template: dict[str, Any], function: dict[str, Any]
) -> None:
    environment = function["Environment"]["Variables"]
    missing = [name for name in CONFIG_VARIABLES if name not in environment]
    assert not missing, f"not in the function's environment: {missing}"
    for name, value in environment.items():
        assert name.lower() in Settings.model_fields, f"{name} is not a bridge variable"
        assert isinstance(value, dict) and set(value) == {"Ref"}, name
        assert value["Ref"] in template["Parameters"], name
    assert environment["TARGET_BUCKET"] == {"Ref": "TargetBucketName"}


def test_parameter_values_are_valid_bridge_configuration(
    template: dict[str, Any], function: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = function["Environment"]["Variables"]
    defaults = {name: _resolve_defaults(template, value) for name, value in environment.items()}
    for name, value in defaults.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for name in environment:  # empty defaults mean: the bridge's own defaults
        field = Settings.model_fields[name.lower()]
        expected = field.get_default(call_default_factory=True)
        assert getattr(settings, name.lower()) == expected, f"{name}={defaults[name]!r}"
    # Every value a constrained parameter allows is one the bridge accepts.
    for name, value in environment.items():
        for allowed in template["Parameters"][value["Ref"]].get("AllowedValues", []):
            monkeypatch.setenv(name, str(allowed))
            load_settings()
        monkeypatch.setenv(name, defaults[name])


def test_outputs_name_the_queues_and_the_function(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["QueueUrl"]["Value"] == {"Ref": "Queue"}
    assert outputs["QueueArn"]["Value"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}
    assert outputs["DeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["Function", "Arn"]}


def test_batch_operations_role_may_only_invoke_the_function_and_read_and_write_its_bucket(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    role = resources["BatchOperationsRole"]
    assert _condition(template, role["Condition"], {}) is False  # default: no such role
    assert _condition(template, role["Condition"], {"BatchOperationsBucketName": "ops"}) is True
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"

    granted: dict[str, list[Any]] = {}
    for statement in _statements(role):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for action in _as_list(statement["Action"]):
            granted.setdefault(action, []).extend(_as_list(statement["Resource"]))
    objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}/*"}
    assert granted == {
        "lambda:InvokeFunction": [
            {"Fn::GetAtt": ["Function", "Arn"]},
            {"Fn::Sub": "${Function.Arn}:*"},
        ],
        "s3:GetObject": [objects],
        "s3:GetObjectVersion": [objects],
        "s3:PutObject": [objects],
        "s3:GetBucketLocation": [
            {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}"}
        ],
    }
    output = template["Outputs"]["BatchOperationsRoleArn"]
    assert output["Condition"] == role["Condition"]
    assert output["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}


# --- the Kubernetes manifest --------------------------------------------------------------


def _container(manifest: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = manifest["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_manifest_runs_consume_with_the_image_entrypoint(
    manifest: dict[str, dict[str, Any]],
) -> None:
    container = _container(manifest)
    assert "command" not in container, "the image's ENTRYPOINT (the bridge) is kept"
    assert container["args"] == EXPECTED_CONSUME_ARGS
    # $(QUEUE_URL) expands only from a variable defined in the container's env.
    env = {item["name"]: item for item in container["env"]}
    reference = env["QUEUE_URL"]["valueFrom"]["configMapKeyRef"]
    config_map = manifest["ConfigMap"]
    assert reference == {"name": config_map["metadata"]["name"], "key": "QUEUE_URL"}
    assert config_map["data"]["QUEUE_URL"].startswith("https://sqs.")
    # The bridge's own command line accepts these arguments.
    rest = [a.replace("$(QUEUE_URL)", config_map["data"]["QUEUE_URL"]) for a in container["args"]]
    line = parse_command_line(rest)
    assert line.mode == "consume"
    assert line.options.workers == 2
    assert line.options.queue_url == config_map["data"]["QUEUE_URL"]
    assert line.command == ["python", "handler.py"]


def test_manifest_configuration_is_valid(
    manifest: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map = manifest["ConfigMap"]
    assert {"name": config_map["metadata"]["name"]} in [
        source["configMapRef"] for source in _container(manifest)["envFrom"]
    ]
    data = config_map["data"]
    assert set(CONFIG_VARIABLES) <= set(data)
    for name, value in data.items():
        assert isinstance(value, str), f"{name}: ConfigMap values are strings"
        if name.lower() in Settings.model_fields:
            monkeypatch.setenv(name, value)
        else:
            assert name in {"QUEUE_URL", "AWS_REGION"}, f"unknown variable {name}"
    load_settings()


def test_manifest_is_locked_down_and_drains_before_it_is_killed(
    manifest: dict[str, dict[str, Any]],
) -> None:
    deployment = manifest["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(manifest)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] > 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    (tmp_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[tmp_mount["name"]]
    for kind in ("requests", "limits"):
        assert {"memory", "ephemeral-storage"} <= set(container["resources"][kind]), kind

    visibility = int(
        deployment["metadata"]["annotations"]["s3-event-bridge/queue-visibility-timeout"]
    )
    assert pod["terminationGracePeriodSeconds"] >= visibility + DRAIN_MARGIN


def test_manifest_scales_on_queue_depth_with_keda(manifest: dict[str, dict[str, Any]]) -> None:
    scaled = manifest["ScaledObject"]
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert scaled["spec"]["scaleTargetRef"]["name"] == manifest["Deployment"]["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURLFromEnv"] == "QUEUE_URL"
    assert "QUEUE_URL" in {item["name"] for item in _container(manifest)["env"]}
    assert int(trigger["metadata"]["queueLength"]) >= 1
    assert trigger["metadata"]["awsRegion"] == manifest["ConfigMap"]["data"]["AWS_REGION"]
    auth = manifest["TriggerAuthentication"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["podIdentity"]["provider"] == "aws"
    text = MANIFEST.read_text(encoding="utf-8")
    assert "OPTIONAL" in text.split("kind: TriggerAuthentication")[0], "KEDA marked optional"


# --- operations: logs, tracing, concurrency, metrics, namespace --------------------------


def test_function_logs_json_at_a_chosen_level_by_default(
    template: dict[str, Any], function: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = template["Parameters"]
    logging_config = function["LoggingConfig"]
    assert logging_config["LogFormat"] == {"Ref": "FunctionLogFormat"}
    assert parameters["FunctionLogFormat"]["Default"] == "JSON"
    # Lambda accepts an application log level only with the JSON format.
    condition, level, otherwise = logging_config["ApplicationLogLevel"]["Fn::If"]
    assert level == {"Ref": "ApplicationLogLevel"} and otherwise == {"Ref": "AWS::NoValue"}
    assert _condition(template, condition, {}) is True
    assert _condition(template, condition, {"FunctionLogFormat": "Text"}) is False
    # Lambda hands both to the bridge (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL).
    expected = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING"}
    expected |= {"ERROR": "ERROR", "FATAL": "ERROR"}
    assert set(parameters["ApplicationLogLevel"]["AllowedValues"]) == set(expected)
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    for lambda_level, bridge_level in expected.items():
        monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", lambda_level)
        settings = load_settings()
        assert (settings.log_format, settings.log_level) == ("json", bridge_level)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")  # the bridge's own variable still wins
    assert load_settings().log_level == "DEBUG"


def test_tracing_is_a_parameter_and_active_tracing_may_write_traces(
    template: dict[str, Any], resources: dict[str, Any], function: dict[str, Any]
) -> None:
    assert function["Tracing"] == {"Ref": "Tracing"}
    assert set(template["Parameters"]["Tracing"]["AllowedValues"]) == {"PassThrough", "Active"}
    condition, statement = _conditional_statements(resources["FunctionRole"])["WriteTraces"]
    assert set(statement["Action"]) == WILDCARD_RESOURCE_ACTIONS
    assert _condition(template, condition, {"Tracing": "Active"}) is True
    assert _condition(template, condition, {}) is False


def test_reserved_concurrency_is_an_optional_parameter(
    template: dict[str, Any], function: dict[str, Any]
) -> None:
    condition, value, otherwise = function["ReservedConcurrentExecutions"]["Fn::If"]
    assert value == {"Ref": "ReservedConcurrency"} and otherwise == {"Ref": "AWS::NoValue"}
    assert _condition(template, condition, {}) is False  # default: no reservation
    assert _condition(template, condition, {"ReservedConcurrency": "5"}) is True


def test_every_operations_parameter_is_in_the_console_groups(template: dict[str, Any]) -> None:
    grouped = {
        name
        for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for name in group["Parameters"]
    }
    assert set(template["Parameters"]) == grouped


def test_manifest_lives_in_its_namespace_with_requests_and_limits(
    manifest: dict[str, dict[str, Any]],
) -> None:
    namespace = manifest["Namespace"]["metadata"]["name"]
    for kind, document in manifest.items():
        if kind != "Namespace":
            assert document["metadata"]["namespace"] == namespace, kind
    resources = _container(manifest)["resources"]
    assert {"cpu", "memory", "ephemeral-storage"} <= set(resources["requests"])
    assert {"memory", "ephemeral-storage"} <= set(resources["limits"])
    assert manifest["ConfigMap"]["data"]["METRICS"] in ("off", "emf")
