"""The `assignsvc` command: `serve`, and client commands that talk gRPC to a server.

Client commands take --target, --timeout and -o table|json|yaml (cli/output.py prints).
Exit status: 0 done, 1 refused (by the server, or a file that fails validation, and
then nothing is sent), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from assignsvc.cli import access as cli_access
from assignsvc.cli import bulk as cli_bulk
from assignsvc.cli import experiments as cli_experiments
from assignsvc.cli import output as out
from assignsvc.cli import webhooks as cli_webhooks
from assignsvc.cli.access import add_credential_flags
from assignsvc.cli.common import client_command
from assignsvc.cli.groups import add_group_commands
from assignsvc.cli.serve import add_serve_command
from assignsvc.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="assignsvc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_command(sub)

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--target", help="server host:port (ASSIGNSVC_TARGET, default 127.0.0.1:50051)")
    connection.add_argument("--timeout", type=float, help="seconds per call (ASSIGNSVC_TIMEOUT, default 10)")
    add_credential_flags(connection)
    client = argparse.ArgumentParser(add_help=False, parents=[connection])
    client.add_argument("-o", "--output", choices=out.OUTPUTS, default="table")

    cli_experiments.add_commands(sub, client)

    webhooks = sub.add_parser("webhooks", help="signed HTTP notifications of experiment events")
    cli_webhooks.add_commands(webhooks.add_subparsers(dest="action", required=True), client, client_command)
    groups = sub.add_parser("groups", help="saved groups: named id lists for $inGroup conditions")
    add_group_commands(groups.add_subparsers(dest="action", required=True), client, client_command)
    cli_bulk.register(sub, connection, client, client_command)
    cli_access.add_commands(sub, client, client_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `assignsvc` command."""
    parser = build_parser()
    _own_usage(parser)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # told with the usage of the command that was given, not the top level's
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"assignsvc: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `assignsvc export EXP | head`: the reader left, as SIGPIPE would end us
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 130


def _own_usage(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command a default naming its own parser, for main's error message."""
    parser.set_defaults(usage_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _own_usage(sub)


if __name__ == "__main__":
    sys.exit(main())
