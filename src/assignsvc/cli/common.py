"""What every client command shares: the connection flags, the channel, and the wrapper
that turns a command into an exit status (0 done, 1 refused by the server)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from assignsvc.cli import output as out
from assignsvc.cli.access import with_credentials
from assignsvc.config import ClientConfig, client_channel_options

# A client command: the channel (credentials attached), the parsed flags, the timeout.
Command = Callable[[grpc.Channel, argparse.Namespace, float], int | None]
# The flags ClientConfig.load reads, by argparse's dest names.
CLIENT_FLAGS = ("target", "timeout", "api_key", "datasource", "tls_ca", "tls")


def repeatable(parser: argparse.ArgumentParser, flag: str, metavar: str, text: str) -> None:
    """A flag that may be given many times (`text` says so): its values in order, [] if never."""
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=text)


def flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The named flags' values (None: not given), for a config's load()."""
    return {name: getattr(args, name) for name in names}


def channel(config: ClientConfig) -> grpc.Channel:
    """A channel to the server: TLS when a CA file or --tls is given, else plaintext."""
    if not config.tls:
        return grpc.insecure_channel(config.target, options=client_channel_options())
    roots = config.tls_ca.read_bytes() if config.tls_ca is not None else None
    return grpc.secure_channel(config.target, grpc.ssl_channel_credentials(roots), options=client_channel_options())


def client_command(command: Command) -> Callable[[argparse.Namespace], int]:
    """The command run on a channel made from the client flags; an RPC error is printed, exit 1."""

    def run(args: argparse.Namespace) -> int:
        config = ClientConfig.load(os.environ, **flags(args, CLIENT_FLAGS))
        with channel(config) as plain:
            credentialed = with_credentials(plain, config.api_key, config.datasource)
            try:
                return command(credentialed, args, config.timeout_s) or 0
            except grpc.RpcError as error:
                print(out.describe_rpc_error(error), file=sys.stderr)
                return 1

    return run
