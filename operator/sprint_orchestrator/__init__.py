"""Sprint Orchestrator: a Kubernetes operator that runs sprints of AI-agent coding tasks."""

from __future__ import annotations

GROUP = "sprintorchestrator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_SPRINT = f"{GROUP}/sprint"
LABEL_TASK = f"{GROUP}/task"
LABEL_ATTEMPT = f"{GROUP}/attempt"

__version__ = "0.1.0"

# Human actions are requested as annotations whose value is a nonce (applied once each).
ANNOTATION_RETRY = f"{GROUP}/retry"
ANNOTATION_APPROVE = f"{GROUP}/approve"
ANNOTATION_CANCEL = f"{GROUP}/cancel"
ANNOTATION_REQUEST_CHANGES = f"{GROUP}/request-changes"
# The review a request-changes nonce applies (JSON, review.py), and the commit an approval was given for.
ANNOTATION_REVIEW = f"{GROUP}/review"
ANNOTATION_APPROVE_COMMIT = f"{GROUP}/approve-commit"
