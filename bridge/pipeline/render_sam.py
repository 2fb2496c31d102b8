"""``pipeline render --format sam``: an AWS SAM template for a pipeline (docs/design.md §14).

Per step: a container-image function from the one ``ImageUri`` parameter (its CMD is the
step's ``run``, its environment the step's variables), an SQS queue with a dead-letter
queue and a redrive policy, the event source mapping with ``ReportBatchItemFailures``, the
queue policy that lets S3 send, the bucket's notification, a log group, and a role that
grants exactly what the step does (``step_permissions``). Given the parameter
``BatchOperationsBucketName`` (job manifests and completion reports), also the role an S3
Batch Operations job assumes to invoke the steps' functions on existing objects
(``batch_operations_role``). Pure: a document, no I/O.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

from bridge.pipeline.model import Pipeline, StepConfig, logical_id, s3_event_types

LAMBDA_MAX_TIMEOUT = 900
DEFAULT_FUNCTION_TIMEOUT = 300
MAX_RECEIVE_COUNT = 5
# Room for listing, pulling and pushing around the handler's own timeout.
TRANSFER_MARGIN = 60


@dataclass(frozen=True)
class Permission:
    """One IAM grant: an action on a bucket (``objects``: its keys, else the bucket)."""

    action: str
    bucket: str
    objects: bool


def step_permissions(step: StepConfig) -> list[Permission]:
    """The S3 access a step needs, from what the engine does with its configuration.

    - GetObject on the source objects: pulling, and HeadObject for the chain depth.
    - ListBucket on the source: prefix scope lists the group prefix; an execution filter
      sees the listing in either scope.
    - PutObject (and AbortMultipartUpload, for large outputs) on the target objects.
    - SKIP_UNCHANGED learns stored ETags: in events scope with HeadObject (GetObject on the
      target); in prefix scope from the source listing, or for another target bucket by
      listing it (ListBucket on the target).
    - Lineage records are PutObject on the target (granted above). ``remove-outputs`` reads
      them and checks an output's ETag before removing it (GetObject on the target), and
      removes outputs and records (DeleteObject on the target: only then).
    """
    source, target = step.spec.on.bucket, step.target
    events_scope = step.scope == "events"
    grants = [Permission("s3:GetObject", source, True)]
    if not events_scope or step.settings.execution_filter is not None:
        grants.append(Permission("s3:ListBucket", source, False))
    grants.append(Permission("s3:PutObject", target, True))
    grants.append(Permission("s3:AbortMultipartUpload", target, True))
    if step.settings.skip_unchanged:
        if events_scope:
            grants.append(Permission("s3:GetObject", target, True))
        elif target != source:
            grants.append(Permission("s3:ListBucket", target, False))
    if step.settings.removes_outputs:
        grants.append(Permission("s3:GetObject", target, True))
        grants.append(Permission("s3:DeleteObject", target, True))
    return list(dict.fromkeys(grants))


def function_timeout(step: StepConfig) -> int:
    """The function's timeout: the handler's plus room for transfers, within Lambda's limit."""
    if step.spec.timeout is None:
        return DEFAULT_FUNCTION_TIMEOUT
    return min(LAMBDA_MAX_TIMEOUT, math.ceil(step.spec.timeout) + TRANSFER_MARGIN)


def render_sam(pipeline: Pipeline) -> dict[str, Any]:
    """The SAM template of ``pipeline`` as a document (dump it as YAML or JSON)."""
    parameters: dict[str, Any] = {
        "ImageUri": {
            "Type": "String",
            "Description": "URI of the image (in ECR, same Region) built FROM the "
            "s3-event-bridge base image with every step's handler in its WORKDIR",
            "AllowedPattern": r"^\S+$",
        }
    }
    resources: dict[str, Any] = {}
    for bucket in pipeline.buckets:
        parameters[_bucket_parameter(bucket)] = {
            "Type": "String",
            "Default": bucket,
            "Description": f"Name of the pipeline's bucket {bucket!r} (globally unique)",
            "AllowedPattern": r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        }
    for step in pipeline.steps:
        resources.update(_step_resources(pipeline, step))
    for bucket in pipeline.buckets:
        resources[f"{logical_id(bucket)}Bucket"] = _bucket(pipeline, bucket)
    parameters[BATCH_OPERATIONS_BUCKET] = {
        "Type": "String",
        "Default": "",
        "Description": "Bucket of the manifests and completion reports of S3 Batch Operations "
        "jobs that invoke the steps' functions (empty = no role for such jobs); use a bucket "
        "whose objects trigger no step",
        "AllowedPattern": r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    }
    resources[BATCH_OPERATIONS_ROLE] = batch_operations_role(pipeline)
    outputs: dict[str, Any] = {
        f"{BATCH_OPERATIONS_ROLE}Arn": {
            "Condition": HAS_BATCH_OPERATIONS,
            "Description": "Role an S3 Batch Operations job assumes to invoke a step's "
            "function (create-job --role-arn)",
            "Value": {"Fn::GetAtt": [BATCH_OPERATIONS_ROLE, "Arn"]},
        }
    }
    for step in pipeline.steps:
        part = logical_id(step.name)
        outputs[f"{part}QueueUrl"] = {
            "Description": f"Queue of step {step.name}",
            "Value": {"Ref": f"{part}Queue"},
        }
        outputs[f"{part}DeadLetterQueueUrl"] = {
            "Description": f"Dead-letter queue of step {step.name}",
            "Value": {"Ref": f"{part}DeadLetterQueue"},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"s3-event-bridge pipeline {pipeline.name} "
        f"(rendered by 's3-event-bridge pipeline render {pipeline.source.name} --format sam')",
        "Parameters": parameters,
        "Conditions": {
            HAS_BATCH_OPERATIONS: {
                "Fn::Not": [{"Fn::Equals": [{"Ref": BATCH_OPERATIONS_BUCKET}, ""]}]
            }
        },
        "Resources": resources,
        "Outputs": outputs,
    }


BATCH_OPERATIONS_BUCKET = "BatchOperationsBucketName"
BATCH_OPERATIONS_ROLE = "BatchOperationsRole"
HAS_BATCH_OPERATIONS = "HasBatchOperations"


def batch_operations_role(pipeline: Pipeline) -> dict[str, Any]:
    """The role an S3 Batch Operations ``LambdaInvoke`` job assumes: invoke any step's
    function (or a version or alias of it), read the manifests and write the completion
    reports in the ``BatchOperationsBucketName`` bucket; created only when that is given."""
    functions = [f"{logical_id(step.name)}Function" for step in pipeline.steps]
    bucket = f"arn:${{AWS::Partition}}:s3:::${{{BATCH_OPERATIONS_BUCKET}}}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "InvokeFunctions",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [
                arn
                for function in functions
                for arn in (
                    {"Fn::GetAtt": [function, "Arn"]},
                    {"Fn::Sub": f"${{{function}.Arn}}:*"},
                )
            ],
        },
        {
            "Sid": "ReadManifests",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": {"Fn::Sub": f"{bucket}/*"},
        },
        {
            "Sid": "WriteReports",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Sub": f"{bucket}/*"},
        },
        {
            "Sid": "LocateBucket",
            "Effect": "Allow",
            "Action": "s3:GetBucketLocation",
            "Resource": {"Fn::Sub": bucket},
        },
    ]
    return {
        "Type": "AWS::IAM::Role",
        "Condition": HAS_BATCH_OPERATIONS,
        "Properties": _role_properties(
            f"S3 Batch Operations jobs of pipeline {pipeline.name}",
            "batchoperations.s3.amazonaws.com",
            f"{pipeline.name}-batch-operations",
            statements,
        ),
    }


def _role_properties(
    description: str, service: str, policy_name: str, statements: list[dict[str, Any]]
) -> dict[str, Any]:
    """An IAM role's properties: ``service`` may assume it; one inline policy."""
    return {
        "Description": description,
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        "Policies": [
            {
                "PolicyName": policy_name,
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
            }
        ],
    }


def _bucket_parameter(bucket: str) -> str:
    return f"{logical_id(bucket)}BucketName"


def _bucket_name(pipeline: Pipeline, bucket: str) -> str:
    """For ``Fn::Sub``: the parameter of an owned bucket, or an outside bucket's name."""
    return f"${{{_bucket_parameter(bucket)}}}" if bucket in pipeline.buckets else bucket


def _step_resources(pipeline: Pipeline, step: StepConfig) -> dict[str, Any]:
    part = logical_id(step.name)
    timeout = function_timeout(step)
    source = _bucket_name(pipeline, step.spec.on.bucket)
    statements: list[dict[str, Any]] = []
    for action, grants in _by_action(step_permissions(step)).items():
        statements.append(
            {
                "Sid": action.replace("s3:", "S3"),
                "Effect": "Allow",
                "Action": action,
                "Resource": [
                    {
                        "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::"
                        f"{_bucket_name(pipeline, g.bucket)}{'/*' if g.objects else ''}"
                    }
                    for g in grants
                ],
            }
        )
    statements.append(
        {
            "Sid": "ConsumeQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": {"Fn::GetAtt": [f"{part}Queue", "Arn"]},
        }
    )
    statements.append(
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [f"{part}LogGroup", "Arn"]},
        }
    )
    function: dict[str, Any] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Description": f"s3-event-bridge pipeline {pipeline.name}, step {step.name}",
            "PackageType": "Image",
            "ImageUri": {"Ref": "ImageUri"},
            "ImageConfig": {"Command": shlex.split(step.spec.run)},
            "Role": {"Fn::GetAtt": [f"{part}Role", "Arn"]},
            "Timeout": timeout,
            "MemorySize": 1024,
            "LoggingConfig": {"LogGroup": {"Ref": f"{part}LogGroup"}},
            "Environment": {"Variables": dict(step.variables)},
            "Events": {
                "Queue": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": {"Fn::GetAtt": [f"{part}Queue", "Arn"]},
                        "BatchSize": 10,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    },
                }
            },
        },
    }
    if "workers" in step.spec.model_fields_set:
        function["Properties"]["ReservedConcurrentExecutions"] = step.spec.workers
    return {
        f"{part}DeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "QueueName": f"{pipeline.name}-{step.name}-dlq",
                "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True,
            },
        },
        f"{part}Queue": {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "QueueName": f"{pipeline.name}-{step.name}",
                # AWS's rule for Lambda consumers: at least 6 x the function timeout.
                "VisibilityTimeout": 6 * timeout,
                "MessageRetentionPeriod": 345600,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [f"{part}DeadLetterQueue", "Arn"]},
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
            },
        },
        f"{part}QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": f"{part}Queue"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowBucketNotifications",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": {"Fn::GetAtt": [f"{part}Queue", "Arn"]},
                            "Condition": {
                                "ArnLike": {
                                    "aws:SourceArn": {
                                        "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{source}"
                                    }
                                },
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            },
                        }
                    ],
                },
            },
        },
        f"{part}LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {"RetentionInDays": 30},
        },
        f"{part}Role": {
            "Type": "AWS::IAM::Role",
            "Properties": _role_properties(
                f"s3-event-bridge pipeline {pipeline.name}, step {step.name}",
                "lambda.amazonaws.com",
                f"{pipeline.name}-{step.name}",
                statements,
            ),
        },
        f"{part}Function": function,
    }


def _by_action(grants: list[Permission]) -> dict[str, list[Permission]]:
    grouped: dict[str, list[Permission]] = {}
    for grant in grants:
        grouped.setdefault(grant.action, []).append(grant)
    return grouped


def _bucket(pipeline: Pipeline, bucket: str) -> dict[str, Any]:
    steps = [s for s in pipeline.steps if s.spec.on.bucket == bucket]
    configurations = []
    for step in steps:
        rules = [
            {"Name": name, "Value": value}
            for name, value in (("prefix", step.spec.on.prefix), ("suffix", step.spec.on.suffix))
            if value
        ]
        for event in s3_event_types(step.notification_events):
            configuration: dict[str, Any] = {
                "Event": event,
                "Queue": {"Fn::GetAtt": [f"{logical_id(step.name)}Queue", "Arn"]},
            }
            if rules:
                configuration["Filter"] = {"S3Key": {"Rules": rules}}
            configurations.append(configuration)
    resource: dict[str, Any] = {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": {"Ref": _bucket_parameter(bucket)},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    }
    if configurations:
        resource["Properties"]["NotificationConfiguration"] = {
            "QueueConfigurations": configurations
        }
        # S3 checks that it may send to each queue when the notification is put.
        resource["DependsOn"] = [f"{logical_id(s.name)}QueuePolicy" for s in steps]
    return resource
