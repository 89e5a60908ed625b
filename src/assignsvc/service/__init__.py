"""The gRPC boundary: servicers, proto <-> model conversion, error -> status mapping."""

from assignsvc.service.assignment_servicer import AssignmentServicer
from assignsvc.service.experiment_servicer import ExperimentServicer
from assignsvc.service.saved_group_servicer import SavedGroupServicer

__all__ = ["AssignmentServicer", "ExperimentServicer", "SavedGroupServicer"]
