"""/openapi.json: an OpenAPI 3 document of the transcoded v1 API, generated from the protos.

Built from the same route table the transcoder serves (api.http.routes), with a schema
per message in the proto3 JSON mapping (lowerCamelCase names, 64-bit integers as
strings, well-known types as their JSON forms), so it cannot list a route that is not
served, nor miss one that is (a test compares them).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from assignsvc.api.http.routes import Route, all_routes

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "example": "name,arms"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "any JSON value"},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {"type": "object", "additionalProperties": True},
}


def _ref(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    name = descriptor.full_name
    if name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[name])
    if name not in schemas:
        schemas[name] = {}  # placeholder: recursive messages
        schemas[name] = _schema(descriptor, schemas)
    return {"$ref": f"#/components/schemas/{name}"}


def _field(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, schemas)}
    single = _single(field, schemas)
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None:
        return _ref(field.message_type, schemas)
    if field.enum_type is not None:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    return dict(_SCALARS[field.type])


def _schema(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    properties = {f.json_name: _field(f, schemas) for f in descriptor.fields}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def openapi_path(route: Route) -> str:
    """The route's path in OpenAPI's template syntax (the annotation's variables, unchanged)."""
    return route.template


def document() -> dict[str, Any]:
    """The OpenAPI 3 document of every transcoded route."""
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for route in all_routes():
        method = route.method
        operation_id = f"{method.containing_service.name}_{method.name}"
        if operation_id in operation_ids:  # an additional binding
            operation_id += f"_{route.verb.lower()}"
        operation_ids.add(operation_id)
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [method.containing_service.name],
            "parameters": [
                {"name": v, "in": "path", "required": True, "schema": {"type": "string"}} for v in route.variables
            ],
            "responses": {
                "200": {
                    "description": "OK"
                    + (" (NDJSON lines: {result} or a final {error})" if method.server_streaming else ""),
                    "content": {
                        ("application/x-ndjson" if method.server_streaming else "application/json"): {
                            "schema": _ref(method.output_type, schemas)
                        }
                    },
                },
                "default": {
                    "description": "google.rpc.Status, with the HTTP status of AIP-193",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
                },
            },
        }
        if route.body:
            body_type: Descriptor | None = method.input_type
            if route.body != "*":
                body_type = method.input_type.fields_by_name[route.body].message_type
            assert body_type is not None, f"{method.full_name}: body {route.body!r} is not a message field"
            media = "application/x-ndjson" if method.client_streaming else "application/json"
            operation["requestBody"] = {"required": True, "content": {media: {"schema": _ref(body_type, schemas)}}}
        paths.setdefault(openapi_path(route), {})[route.verb.lower()] = operation
    schemas["google.rpc.Status"] = {
        "type": "object",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "assignsvc v1 (HTTP/JSON, transcoded from gRPC)", "version": "v1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "security": [{"apiKey": []}],
    }
