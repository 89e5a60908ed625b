"""The gRPC boundary: servicers, proto <-> model conversion, error -> status mapping."""

from assignsvc.api.assignment_servicer import AssignmentServicer
from assignsvc.api.bulk_servicer import BulkAssignmentServicer
from assignsvc.api.experiment_servicer import ExperimentServicer
from assignsvc.api.saved_group_servicer import SavedGroupServicer
from assignsvc.api.webhook_servicer import WebhookServicer

__all__ = [
    "AssignmentServicer",
    "BulkAssignmentServicer",
    "ExperimentServicer",
    "SavedGroupServicer",
    "WebhookServicer",
]
