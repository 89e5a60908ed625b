"""The gRPC boundary: servicers, proto <-> model conversion, error -> status mapping."""

from assignsvc.service.assignment_servicer import AssignmentServicer
from assignsvc.service.bulk_servicer import BulkAssignmentServicer
from assignsvc.service.experiment_servicer import ExperimentServicer
from assignsvc.service.saved_group_servicer import SavedGroupServicer
from assignsvc.service.webhook_servicer import WebhookServicer

__all__ = [
    "AssignmentServicer", "BulkAssignmentServicer", "ExperimentServicer", "SavedGroupServicer", "WebhookServicer",
]
