"""The v1 API's HTTP routes, read from the protos' google.api.http annotations (AIP-127).

One table, built from the descriptors at start, is what the transcoder serves and what
/openapi.json describes, so the two cannot disagree, and Envoy's gRPC-JSON transcoder
or grpc-gateway in front of the gRPC port would expose exactly these paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from assignsvc.v1 import (
    access_service_pb2,
    assignment_service_pb2,
    bulk_assignment_service_pb2,
    experiment_service_pb2,
    saved_group_service_pb2,
    webhook_service_pb2,
)

FILES = (
    experiment_service_pb2,
    assignment_service_pb2,
    bulk_assignment_service_pb2,
    saved_group_service_pb2,
    webhook_service_pb2,
    access_service_pb2,
)
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of an RPC."""

    verb: str  # GET, POST, PATCH, DELETE, PUT
    template: str  # the annotation's path, e.g. /v1/experiments/{experiment.id}
    body: str  # "" (no body), "*" (the whole request) or a field name
    method: MethodDescriptor

    @property
    def full_method(self) -> str:
        """/package.Service/Method, as gRPC and the scope table name it."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def variables(self) -> list[str]:
        """The field paths bound by the path, in order."""
        return _VARIABLE.findall(self.template)

    @property
    def aiohttp_path(self) -> str:
        """The template as an aiohttp route: each variable one segment (dots become __)."""
        return _VARIABLE.sub(lambda m: "{" + m.group(1).replace(".", "__") + ":[^/]+}", self.template)


def services() -> list[ServiceDescriptor]:
    """Every v1 service."""
    return [service for module in FILES for service in module.DESCRIPTOR.services_by_name.values()]


def _binding(rule: http_pb2.HttpRule, method: MethodDescriptor) -> Route:
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        raise ValueError(f"{method.full_name}: unsupported google.api.http pattern {verb!r}")
    return Route(verb.upper(), getattr(rule, verb), rule.body, method)


def all_routes() -> list[Route]:
    """Every binding of every RPC (an RPC without an annotation is a bug: a test checks)."""
    out = []
    for service in services():
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            out.append(_binding(rule, method))
            out += [_binding(extra, method) for extra in rule.additional_bindings]
    return out
