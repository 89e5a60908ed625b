"""Logging setup: text or JSON lines on stderr, a request id on every line logged
inside an RPC, and credentials scrubbed from whatever a message carries.

The request id lives in a context variable that the server interceptor sets per
call (from `x-request-id` metadata, or generated), so any module can log without
passing it around.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("assignsvc_request_id", default="")

# userinfo of a URL (redis://user:password@host), Standard Webhooks secrets and API keys.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_SECRETS = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
_API_KEYS = re.compile(r"asv_[A-Za-z0-9]+")


def scrub(text: str) -> str:
    """text with URL credentials, webhook secrets and API keys replaced by ***."""
    text = _API_KEYS.sub("asv_***", _SECRETS.sub("whsec_***", _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)))
    return text


class _Scrubbing(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return scrub(super().formatMessage(record))


class TextFormatter(_Scrubbing):
    """`time level logger [request id]: message`, for people."""

    def __init__(self, worker: int | None = None) -> None:
        tag = "" if worker is None else f"[worker {worker}]"
        super().__init__(f"%(asctime)s %(levelname)s %(name)s{tag}%(request)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the request id in brackets inside an RPC."""
        request_id = REQUEST_ID.get()
        record.request = f" [{request_id}]" if request_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then worker, request_id, exc if any."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        """The record as one scrubbed JSON line."""
        line: dict[str, str | int] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if self._worker is not None:
            line["worker"] = self._worker
        if request_id := REQUEST_ID.get():
            line["request_id"] = request_id
        if record.exc_info:
            line["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: str, worker: int | None = None) -> None:
    """Send every log line to stderr in the chosen format (`text` or `json`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker) if log_format == "json" else TextFormatter(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
