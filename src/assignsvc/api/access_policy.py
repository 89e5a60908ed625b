"""Which scope each RPC needs: one table, so a new RPC cannot be added without a decision
(tests check every method of every service is here)."""

from __future__ import annotations

from assignsvc.core.access import Scope

# Calls anyone may make without credentials: probes and API discovery.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

_READS = {
    "ExperimentService": ("GetExperiment", "ListExperiments", "GetExperimentStats"),
    "BulkAssignmentService": ("ExportAssignments",),
    "SavedGroupService": ("GetSavedGroup", "ListSavedGroups"),
}
_SERVICE_SCOPES = {
    "AssignmentService": Scope.ASSIGN,
    "ExperimentService": Scope.ADMIN,
    "BulkAssignmentService": Scope.ADMIN,
    "SavedGroupService": Scope.ADMIN,
    "WebhookService": Scope.ADMIN,
    "ApiKeyService": Scope.ADMIN,
    "DatasourceService": Scope.OPERATOR,
}
# Services an operator key may call in any datasource it names (to hand out its first key).
_OPERATOR_MAY = ("ApiKeyService",)
PACKAGE = "assignsvc.v1"


def required_scope(full_method: str) -> tuple[Scope, bool]:
    """(scope needed, whether an operator key may call it too) for `/package.Service/Method`;
    an unknown method needs ADMIN (refuse by default)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    package, _, name = service.rpartition(".")
    if package != PACKAGE or name not in _SERVICE_SCOPES:
        return Scope.ADMIN, False
    scope = Scope.READ if method in _READS.get(name, ()) else _SERVICE_SCOPES[name]
    return scope, name in _OPERATOR_MAY


def covered_services() -> tuple[str, ...]:
    """The services this table decides for (tests compare them with the protos')."""
    return tuple(f"{PACKAGE}.{name}" for name in _SERVICE_SCOPES)
