"""A small blocking HTTP client for the HTTP edge's tests (stdlib only: what any client sends)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def lines(self) -> list[Any]:
        """The body as NDJSON."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def call(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
) -> Reply:
    """One request (content_type None: no Content-Type header at all); any status is an answer."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = dict(headers or {})
    if data is not None and content_type is not None:
        sent.setdefault("Content-Type", content_type)
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=data, headers=sent)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def http_request(route: Any, message: Any) -> tuple[str, str, bytes | None, str | None]:
    """(verb, path with query, body, content type) that sends `message` to the RPC of
    `route` (api.http.routes.Route) as a transcoding client would: path variables from the
    message, the body the binding names, every other set field as a query parameter."""
    from urllib.parse import quote, urlencode  # noqa: PLC0415 - only this function needs them

    from google.protobuf import json_format  # noqa: PLC0415

    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    path = route.template
    for variable in route.variables:
        value: Any = document
        for part in variable.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        path = path.replace("{" + variable + "}", quote(str(value), safe=""))
    if route.method.client_streaming:
        return route.verb, path, json.dumps(document).encode() + b"\n", "application/x-ndjson"
    if route.body == "*":
        return route.verb, path, json.dumps(document).encode(), "application/json"
    body = None
    if route.body:
        body = json.dumps(document.pop(route.body, {})).encode()
    query = []
    for name, value in document.items():
        if name in {v.split(".")[0] for v in route.variables} and not isinstance(value, dict | list):
            continue
        if isinstance(value, dict):
            if set(value) == {"paths"}:  # a FieldMask
                query.append((name, ",".join(value["paths"])))
            continue
        for item in value if isinstance(value, list) else [value]:
            query.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
    if query:
        path += "?" + urlencode(query)
    return route.verb, path, body, "application/json" if body is not None else None
