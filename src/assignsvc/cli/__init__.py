"""The `assignsvc` command: `serve` and the client commands, one module per command group."""

from assignsvc.cli.main import main

__all__ = ["main"]
