"""Webhook receivers written the way each seed system's documentation shows, on loopback.

Each verifies and parses a request exactly as its system's own receiver example does
and answers 200 (accepted: the parsed event is kept), 401 (the signature or token does
not verify) or 400 (verified but not that system's body). Secrets are per path, so one
receiver can stand behind several webhooks: `receiver.url_for(name)` and `receiver.secrets`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError


class RefusedError(Exception):
    """The request is not this system's: `status` is the answer (401 or 400)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Outcome:
    """One request: the path, the answer and the event the receiver parsed (or why not)."""

    path: str
    status: int
    event: dict[str, Any] | None
    why: str = ""


# secret (or token), headers (lower-case names), raw body -> the parsed event; RefusedError otherwise.
Check = Callable[[str, Mapping[str, str], bytes], dict[str, Any]]


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise RefusedError(400, "not JSON") from None
    if not isinstance(doc, dict):
        raise RefusedError(400, "not a JSON object")
    return doc


def eppo(secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Eppo's example: HMAC-SHA256 (hex) of JSON.stringify(req.body.data) with the secret,
    compared in constant time with req.body.signature; then event and data.experiment_id."""
    doc = _json(body)
    data, signature = doc.get("data"), doc.get("signature")
    if not isinstance(data, dict) or not isinstance(signature, str):
        raise RefusedError(401, "no data or signature")
    stringified = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    expected = hmac.new(secret.encode(), stringified.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise RefusedError(401, "signature mismatch")
    if not isinstance(doc.get("event"), str) or "experiment_id" not in data or "experiment_key" not in data:
        raise RefusedError(400, "not an Eppo experiment event")
    return {"event": doc["event"], "experiment_id": data["experiment_id"], "data": data}


def intelligems(secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Intelligems' example: hex HMAC-SHA256 of the raw body in X-Intelligems-Signature."""
    signature = headers.get("x-intelligems-signature", "")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature):
        raise RefusedError(401, "signature mismatch")
    doc = _json(body)
    if not isinstance(doc.get("action_type"), str) or "experience_id" not in doc or "timestamp" not in doc:
        raise RefusedError(400, "not an Intelligems experience event")
    return doc


def growthbook(secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """GrowthBook's receivers verify Standard Webhooks with the `standardwebhooks` library,
    then read event, object and data.object."""
    try:
        doc = StandardWebhook(secret).verify(body, dict(headers))
    except WebhookVerificationError as exc:
        raise RefusedError(401, str(exc)) from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("object") != "experiment"
        or not str(doc.get("event", "")).startswith("experiment.")
        or not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
    ):
        raise RefusedError(400, "not a GrowthBook experiment event")
    return doc


def evidential(token: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Evidential's receivers compare Webhook-Token with their token, then read the ids and
    the experiment_url to fetch."""
    if not hmac.compare_digest(headers.get("webhook-token", ""), token):
        raise RefusedError(401, "token mismatch")
    doc = _json(body)
    wanted = ("type", "organization_id", "datasource_id", "experiment_id", "experiment_url")
    if doc.get("type") != "experiment.created" or any(not isinstance(doc.get(k), str) for k in wanted):
        raise RefusedError(400, "not Evidential's experiment.created")
    return doc


class SeedReceiver:
    """ThreadingHTTPServer on 127.0.0.1:free port that checks every POST with `check`."""

    def __init__(self, check: Check) -> None:
        self.secrets: dict[str, str] = {}  # path -> the secret (or token) of the webhook posting there
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    event = check(receiver.secrets.get(self.path, ""), headers, body)
                    outcome = Outcome(self.path, 200, event)
                except RefusedError as exc:
                    outcome = Outcome(self.path, exc.status, None, str(exc))
                with receiver._lock:
                    receiver._outcomes.append(outcome)
                self.send_response(outcome.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url_for(self, name: str) -> str:
        """The URL of path /NAME (one webhook's own secret, set in `secrets["/NAME"]`)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def outcomes(self) -> list[Outcome]:
        """A snapshot of every request so far."""
        with self._lock:
            return list(self._outcomes)

    def accepted(self) -> list[dict[str, Any]]:
        """The events parsed from requests that verified."""
        return [o.event for o in self.outcomes() if o.event is not None]


@contextmanager
def seed_receiver(check: Check) -> Iterator[SeedReceiver]:
    """A started SeedReceiver, stopped on exit."""
    receiver = SeedReceiver(check)
    receiver._thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


CHECKS: dict[str, Check] = {
    "eppo": eppo,
    "intelligems": intelligems,
    "growthbook": growthbook,
    "evidential": evidential,
}
