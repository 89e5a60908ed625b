"""Wiring: config -> Redis -> stores -> use cases -> the gRPC server; `--workers N` supervision."""

from assignsvc.server.running import RunningServer
from assignsvc.server.wiring import create_server, serve

__all__ = ["RunningServer", "create_server", "serve"]
