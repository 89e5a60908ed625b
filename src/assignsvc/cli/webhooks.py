"""`assignsvc webhooks ...`: add, list, get, update, test, deliveries, rotate, delete.

Kept apart from cli.py (which owns the parser and the experiment commands) so each
module holds one idea; output follows cli_output's conventions (-o table|json|yaml).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2, field_mask_pb2

from assignsvc.cli import output as out
from assignsvc.config import ConfigError, parse_duration
from assignsvc.core.webhook_formats import FORMATS
from assignsvc.documents.experiment_file import format_time
from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc

Command = Callable[[grpc.Channel, argparse.Namespace, float], int | None]
Wrap = Callable[[Command], Callable[[argparse.Namespace], int]]


def _events(spec: str | None) -> list[str]:
    return [e.strip() for e in (spec or "").split(",") if e.strip()]


def _time(message: Any, field: str) -> str:
    return format_time(getattr(message, field).ToMilliseconds()) if message.HasField(field) else out.NONE


def print_webhooks(messages: list[Any], output: str, *, as_list: bool) -> None:
    """Webhooks as a table (the secret, when present, on a line of its own) or JSON/YAML."""
    if output != "table":
        docs = [out.as_dict(m) for m in messages]
        out.emit(docs if as_list else docs[0], output)
        return
    rows = [
        [
            m.id,
            "yes" if m.enabled else "no",
            m.format or "assignsvc",
            ",".join(m.events) or "all",
            m.url,
            m.disabled_reason or out.NONE,
        ]
        for m in messages
    ]
    print(out.table(["ID", "ENABLED", "FORMAT", "EVENTS", "URL", "DISABLED REASON"], rows))
    for m in messages:
        if m.secret:
            print(f"secret of {m.id} (shown only now): {m.secret}")


def print_webhook_details(m: Any, output: str) -> None:
    """One webhook, a field per line."""
    if output != "table":
        print_webhooks([m], output, as_list=False)
        return
    fields = [
        ("id", m.id),
        ("url", m.url),
        ("format", m.format or "assignsvc"),
        ("events", ", ".join(m.events) or "all"),
        ("enabled", "yes" if m.enabled else "no"),
        ("disabled_reason", m.disabled_reason or out.NONE),
        ("failed_events", str(m.failed_events)),
        ("description", m.description or out.NONE),
        ("token", "set" if m.has_token else out.NONE),
        ("sign_body", "yes" if m.sign_body else "no"),
        ("previous_secret_until", _time(m, "previous_secret_expire_time")),
        ("created", _time(m, "create_time")),
        ("updated", _time(m, "update_time")),
    ]
    print("\n".join(f"{name:<22}  {value}" for name, value in fields))


def print_deliveries(messages: list[Any], output: str) -> None:
    """The delivery log: one row per delivery with its last attempt."""
    if output != "table":
        out.emit([out.as_dict(m) for m in messages], output)
        return
    rows = []
    for d in messages:
        last = d.attempts[-1] if d.attempts else None
        rows.append(
            [
                d.id,
                d.event_type,
                out.enum_name(d, "state", "DELIVERY_STATE_"),
                str(d.attempt_count),
                str(last.response_status or out.NONE) if last else out.NONE,
                f"{last.latency.ToMilliseconds()}ms" if last else out.NONE,
                _time(d, "next_attempt_time"),
                (last.error if last else "") or out.NONE,
            ]
        )
    print(
        out.table(
            ["DELIVERY", "EVENT", "STATE", "ATTEMPTS", "STATUS", "LATENCY", "NEXT TRY", "ERROR"], rows, right=(3,)
        )
    )


def _add(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    webhook = wpb.Webhook(
        url=args.url,
        events=_events(args.events),
        description=args.description or "",
        token=args.token or "",
        sign_body=args.sign_body,
        format=args.format or "",
    )
    reply = wgrpc.WebhookServiceStub(channel).CreateWebhook(wpb.CreateWebhookRequest(webhook=webhook), timeout=timeout)
    print_webhooks([reply.webhook], args.output, as_list=False)


def _list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = wgrpc.WebhookServiceStub(channel)
    found = out.all_pages(
        lambda token: stub.ListWebhooks(wpb.ListWebhooksRequest(page_size=100, page_token=token), timeout=timeout),
        "webhooks",
    )
    print_webhooks(found, args.output, as_list=True)


def _get(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = wgrpc.WebhookServiceStub(channel).GetWebhook(wpb.GetWebhookRequest(webhook_id=args.id), timeout=timeout)
    print_webhook_details(reply.webhook, args.output)


def _update(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    patch, mask = wpb.Webhook(id=args.id), list[str]()
    if args.url is not None:
        patch.url, mask = args.url, [*mask, "url"]
    if args.events is not None:
        patch.events.extend(_events(args.events))
        mask.append("events")
    if args.enable or args.disable:
        patch.enabled, mask = args.enable, [*mask, "enabled"]
    if args.description is not None:
        patch.description, mask = args.description, [*mask, "description"]
    if args.token is not None:
        patch.token, mask = args.token, [*mask, "token"]
    if args.sign_body is not None:
        patch.sign_body, mask = args.sign_body == "on", [*mask, "sign_body"]
    if args.format is not None:
        patch.format, mask = args.format, [*mask, "format"]
    if not mask:
        raise ConfigError("webhooks update: nothing to change (see --help)")
    request = wpb.UpdateWebhookRequest(webhook=patch, update_mask=field_mask_pb2.FieldMask(paths=mask))
    reply = wgrpc.WebhookServiceStub(channel).UpdateWebhook(request, timeout=timeout)
    print_webhook_details(reply.webhook, args.output)


def _test(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = wgrpc.WebhookServiceStub(channel).SendTestEvent(
        wpb.SendTestEventRequest(webhook_id=args.id), timeout=timeout
    )
    if args.output == "table":
        print(f"queued webhook.test {reply.event_id} (see `assignsvc webhooks deliveries {args.id}`)")
    else:
        out.emit({"event_id": reply.event_id}, args.output)


def _deliveries(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    request = wpb.ListDeliveriesRequest(webhook_id=args.id, page_size=args.limit)
    print_deliveries(
        list(wgrpc.WebhookServiceStub(channel).ListDeliveries(request, timeout=timeout).deliveries), args.output
    )


def _rotate(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    request = wpb.RotateWebhookSecretRequest(webhook_id=args.id)
    if args.grace is not None:
        try:
            seconds = parse_duration(args.grace)
        except ValueError as exc:
            raise ConfigError(f"--grace: {exc}") from None
        request.grace_period.CopyFrom(duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
    reply = wgrpc.WebhookServiceStub(channel).RotateWebhookSecret(request, timeout=timeout)
    print_webhooks([reply.webhook], args.output, as_list=False)


def _delete(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    wgrpc.WebhookServiceStub(channel).DeleteWebhook(wpb.DeleteWebhookRequest(webhook_id=args.id), timeout=timeout)
    if args.output == "table":
        print(f"deleted {args.id}")
    else:
        out.emit({"webhook_id": args.id, "deleted": True}, args.output)


def add_commands(sub: Any, client: argparse.ArgumentParser, wrap: Wrap) -> None:
    """The `webhooks` subcommands, on the parser `sub` of `assignsvc webhooks`."""
    events_help = "comma-separated event types (default: all), e.g. experiment.created,experiment.warning"
    format_help = f"the body's shape: {', '.join(FORMATS)} (default assignsvc; see docs/webhooks.md)"

    def command(name: str, text: str, run: Command, *positional: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[client], help=text)
        for argument in positional:
            parser.add_argument(argument)
        parser.set_defaults(run=wrap(run))
        return parser

    add = command("add", "create a webhook (prints its secret once)", _add, "url")
    add.add_argument("--events", help=events_help)
    add.add_argument("--description")
    add.add_argument("--token", help="send this value as the Webhook-Token header")
    add.add_argument("--sign-body", action="store_true", help="add a hex HMAC-SHA256 `signature` of data to bodies")
    add.add_argument("--format", help=format_help)
    command("list", "list every webhook", _list)
    command("get", "show one webhook (why it was disabled, if it was)", _get, "id")
    update = command("update", "change the fields named by the flags given", _update, "id")
    update.add_argument("--url")
    update.add_argument("--events", help=events_help + "; '' for all")
    toggle = update.add_mutually_exclusive_group()
    toggle.add_argument("--enable", action="store_true", help="enable (clears an automatic disable)")
    toggle.add_argument("--disable", action="store_true")
    update.add_argument("--description")
    update.add_argument("--token", help="'' removes it")
    update.add_argument("--sign-body", choices=("on", "off"))
    update.add_argument("--format", help=format_help)
    command("test", "send a webhook.test event", _test, "id")
    command("deliveries", "the delivery log, newest first", _deliveries, "id").add_argument(
        "--limit", type=int, default=50, help="at most this many deliveries (default 50)"
    )
    command("rotate", "new signing secret; the old one signs for --grace", _rotate, "id").add_argument(
        "--grace", help="how long the old secret keeps signing: 1h, 30m, 0 (default 24h)"
    )
    command("delete", "delete a webhook and its delivery log", _delete, "id")
