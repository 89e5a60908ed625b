"""Wiring: config -> Redis -> stores -> use cases -> the gRPC server; `--workers N` supervision."""

from assignsvc.server.wiring import RunningServer, create_server, serve

__all__ = ["RunningServer", "create_server", "serve"]
