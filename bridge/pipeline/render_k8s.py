"""``pipeline render --format k8s``: Kubernetes manifests for a pipeline (docs/design.md §14).

Per step: a ServiceAccount (give it the step's role: IRSA or EKS Pod Identity), a
``consume`` Deployment configured with the step's variables, and a KEDA ScaledObject on the
step's queue; one KEDA TriggerAuthentication shared by all. Queue names are those of
``pipeline up`` and the SAM template: ``<pipeline>-<step>``. Pure: documents, no I/O.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from bridge.pipeline.model import Pipeline, StepConfig

# `consume` drains within one visibility timeout, plus the long poll and the SIGKILL grace.
DRAIN_MARGIN = 20 + 5
MESSAGES_PER_RECEIVE = 10


@dataclass(frozen=True)
class K8sOptions:
    """Where the pipeline runs: the image, the AWS account and Region of its queues."""

    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pipeline:latest"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    visibility_timeout: int = 300

    def queue_url(self, pipeline: Pipeline, step: StepConfig) -> str:
        """The URL of the step's queue."""
        return (
            f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{pipeline.name}-{step.name}"
        )


def render_k8s(pipeline: Pipeline, options: K8sOptions) -> list[dict[str, Any]]:
    """The manifests of ``pipeline``, in apply order."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": pipeline.name, "labels": _labels(pipeline)},
            "spec": {"podIdentity": {"provider": "aws", "identityOwner": "workload"}},
        }
    ]
    for step in pipeline.steps:
        documents.extend(_step_documents(pipeline, step, options))
    return documents


def _labels(pipeline: Pipeline, step: StepConfig | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": pipeline.name}
    if step is not None:
        labels["app.kubernetes.io/name"] = f"{pipeline.name}-{step.name}"
    return labels


def _step_documents(
    pipeline: Pipeline, step: StepConfig, options: K8sOptions
) -> list[dict[str, Any]]:
    name = f"{pipeline.name}-{step.name}"
    labels = _labels(pipeline, step)
    env = [{"name": "QUEUE_URL", "value": options.queue_url(pipeline, step)}]
    env.append({"name": "AWS_REGION", "value": options.region})
    env.extend({"name": key, "value": value} for key, value in step.variables.items())
    env.extend([{"name": "TMPDIR", "value": "/tmp"}, {"name": "HOME", "value": "/tmp"}])
    args = ["consume", "--queue-url", "$(QUEUE_URL)", "--workers", str(step.spec.workers)]
    args += [
        "--visibility-timeout",
        str(options.visibility_timeout),
        "--",
        *shlex.split(step.spec.run),
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,  # the ScaledObject owns this number
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "terminationGracePeriodSeconds": options.visibility_timeout + DRAIN_MARGIN,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "consume",
                            "image": options.image,
                            "args": args,
                            "env": env,
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    "eks.amazonaws.com/role-arn": f"arn:aws:iam::{options.account_id}:role/{name}"
                },
            },
        },
        deployment,
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "scaleTargetRef": {"name": name},
                "minReplicaCount": 0,
                "maxReplicaCount": 20,
                "cooldownPeriod": 300,
                "triggers": [
                    {
                        "type": "aws-sqs-queue",
                        "authenticationRef": {"name": pipeline.name},
                        "metadata": {
                            "queueURLFromEnv": "QUEUE_URL",
                            "awsRegion": options.region,
                            # Messages one pod holds at once: its workers x one receive.
                            "queueLength": str(step.spec.workers * MESSAGES_PER_RECEIVE),
                        },
                    }
                ],
            },
        },
    ]
