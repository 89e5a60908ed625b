"""Webhook formats on a live server, each received by a receiver written as its seed system's
documentation shows (tests/support/seed_receivers.py): every mapped event arrives, verifies
and parses; events a format has no name for are logged as dropped; a receiver of one
format refuses every other format's body; bad formats are INVALID_ARGUMENT over gRPC and HTTP."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from assignsvc.cli.main import main
from assignsvc.config import ServerConfig
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import Client, ServerThread, assign, bad_request_fields, free_port, wait_until
from tests.support.hashing import hashed_to
from tests.support.seed_receivers import CHECKS, seed_receiver

TOKEN = "0123456789abcdef0123456789abcdef"  # Evidential's tokens: 32 hex characters
# What each format's receiver gets for the lifecycle below: (event, experiment id) as it reads them.
LIFECYCLE: dict[str, list[tuple[str, str | None]]] = {
    "eppo": [
        ("experiment.configuration.updated", "e1"),  # created
        ("experiment.configuration.updated", "e1"),  # updated
        ("experiment.status.updated", "e1"),  # started
        ("experiment.status.updated", "e1"),  # paused
        ("experiment.status.updated", "e1"),  # resumed
        ("experiment.configuration.updated", "e1"),  # rerandomized
        ("experiment.status.updated", "e1"),  # stopped
        ("experiment.status.updated", "e1"),  # deleted
    ],
    "intelligems": [
        ("create", "e1"),
        ("update", "e1"),
        ("start", "e1"),
        ("pause", "e1"),
        ("start", "e1"),
        ("update", "e1"),
        ("end", "e1"),
        ("delete", "e1"),
        ("test", None),
    ],
    "growthbook": [
        ("experiment.created", "e1"),
        *[("experiment.updated", "e1")] * 6,  # updated, started, paused, resumed, rerandomized, stopped
        ("experiment.deleted", "e1"),
    ],
    "evidential": [("experiment.created", "e1")],  # when the draft starts (is committed)
}
DROPPED: dict[str, list[str]] = {
    "eppo": ["webhook.test"],
    "intelligems": [],
    "growthbook": ["webhook.test"],
    "evidential": ["experiment.created"]
    + ["experiment.updated"]
    + ["experiment.status.updated"] * 3
    + ["experiment.rerandomized", "experiment.deleted", "webhook.test"],
}


@pytest.fixture
def webhook_config(webhook_config: ServerConfig) -> ServerConfig:
    """Also serves HTTP: Evidential's experiment_url names a route of it."""
    http_port = free_port()
    return dataclasses.replace(webhook_config, http_port=http_port, public_url=f"http://127.0.0.1:{http_port}")


def lifecycle(client: Client) -> None:
    """One of each experiment change on a draft: create, update, start, pause, resume,
    rerandomize, stop, delete."""
    ex = client.experiments
    client.create("e1", status=epb.EXPERIMENT_STATUS_DRAFT)
    patch = epb.Experiment(id="e1", name="renamed")
    mask = field_mask_pb2.FieldMask(paths=["name"])
    ex.UpdateExperiment(espb.UpdateExperimentRequest(experiment=patch, update_mask=mask))
    ex.StartExperiment(espb.StartExperimentRequest(experiment_id="e1"))
    ex.PauseExperiment(espb.PauseExperimentRequest(experiment_id="e1"))
    ex.ResumeExperiment(espb.ResumeExperimentRequest(experiment_id="e1"))
    ex.RerandomizeExperiment(espb.RerandomizeExperimentRequest(experiment_id="e1"))
    ex.StopExperiment(espb.StopExperimentRequest(experiment_id="e1"))
    ex.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="e1"))


def srm_warning(client: Client) -> None:
    """At 50/50, only participants the hash puts in a1 arrive (as a pipeline losing a0's
    would report): a real imbalance, and the SRM check raises experiment.warning."""
    client.create("srm")
    for participant in hashed_to("srm", (0.5, 0.5), 1, 60, "p"):
        assign(client, "srm", participant)


def as_read(format_name: str, event: dict[str, Any]) -> tuple[str, Any]:
    """(event name, experiment id) the way that system's receiver reads them."""
    if format_name == "eppo":
        return event["event"], event["experiment_id"]
    if format_name == "intelligems":
        return event["action_type"], event["experience_id"]
    if format_name == "growthbook":
        data = event["data"]["object"]
        return event["event"], data.get("trackingKey", data.get("experimentId"))
    return event["type"], event["experiment_id"]


class TestEachFormat:
    """Every mapped event arrives at that system's receiver, verified and parsed."""

    @pytest.mark.parametrize("format_name", sorted(CHECKS))
    def test_lifecycle(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], live_server: ServerThread, format_name: str
    ) -> None:
        client, stub = live
        with seed_receiver(CHECKS[format_name]) as receiver:
            fields: dict[str, Any] = {"token": TOKEN} if format_name == "evidential" else {}
            request = wpb.Webhook(url=receiver.url_for("hook"), format=format_name, **fields)
            webhook = stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=request)).webhook
            assert webhook.format == format_name
            receiver.secrets["/hook"] = TOKEN if format_name == "evidential" else webhook.secret
            lifecycle(client)
            stub.SendTestEvent(wpb.SendTestEventRequest(webhook_id=webhook.id))
            expected = LIFECYCLE[format_name]
            wait_until(lambda: len(receiver.outcomes()) >= len(expected), 15)
            log = self._log_when_settled(stub, webhook.id, len(expected) + len(DROPPED[format_name]))
            assert [o.status for o in receiver.outcomes()] == [200] * len(expected)
            got = [as_read(format_name, e) for e in receiver.accepted()]
            assert Counter(got) == Counter(expected)  # deliveries run concurrently: any order
            dropped = [d for d in log if d.state == wpb.DELIVERY_STATE_DROPPED]
            assert sorted(d.event_type for d in dropped) == sorted(DROPPED[format_name])
            assert all(d.attempts[0].error.startswith("not sent: ") and d.attempt_count == 0 for d in dropped)
            if format_name == "evidential":
                [body] = receiver.accepted()
                assert body["datasource_id"] == "default"
                self._evidential_fetch(body["experiment_url"])

    @staticmethod
    def _log_when_settled(stub: wgrpc.WebhookServiceStub, webhook_id: str, total: int) -> list[wpb.Delivery]:
        def log() -> list[wpb.Delivery]:
            request = wpb.ListDeliveriesRequest(webhook_id=webhook_id, page_size=100)
            return list(stub.ListDeliveries(request).deliveries)

        wait_until(lambda: len(log()) == total and all(d.state != wpb.DELIVERY_STATE_PENDING for d in log()), 15)
        return log()

    @staticmethod
    def _evidential_fetch(url: str) -> None:
        """The receiver's next step: GET experiment_url (the experiment was deleted since: 404
        in Evidential's words, which proves the URL is the Evidential route)."""
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=5)
        assert caught.value.code == 404
        assert json.loads(caught.value.read()) == {"detail": "Experiment not found or not authorized."}

    @pytest.mark.parametrize("format_name", ["eppo", "growthbook"])
    def test_srm_warning(self, live: tuple[Client, wgrpc.WebhookServiceStub], format_name: str) -> None:
        client, stub = live
        with seed_receiver(CHECKS[format_name]) as receiver:
            request = wpb.Webhook(url=receiver.url_for("hook"), format=format_name, events=["experiment.warning"])
            webhook = stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=request)).webhook
            receiver.secrets["/hook"] = webhook.secret
            srm_warning(client)
            wait_until(lambda: len(receiver.outcomes()) == 1, 15)
            [event] = receiver.accepted()
        if format_name == "eppo":
            assert event["event"] == "experiment.calculated_metrics.updated"
            assert event["data"]["meta_data"]["is_traffic_imbalance"] is True
        else:
            assert event["event"] == "experiment.warning"
            assert event["data"]["object"]["type"] == "srm" and event["data"]["object"]["experimentId"] == "srm"


class TestReceiversRefuseOtherFormats:
    """A receiver given the right secret still refuses a body of any other format."""

    def test_every_pair(self, live: tuple[Client, wgrpc.WebhookServiceStub]) -> None:
        client, stub = live
        formats = ["assignsvc", *sorted(CHECKS)]
        with (
            seed_receiver(CHECKS["eppo"]) as eppo,
            seed_receiver(CHECKS["evidential"]) as evidential,
            seed_receiver(CHECKS["growthbook"]) as growthbook,
            seed_receiver(CHECKS["intelligems"]) as intelligems,
        ):
            receivers = {"eppo": eppo, "evidential": evidential, "growthbook": growthbook, "intelligems": intelligems}
            for name, receiver in receivers.items():
                for sender in (f for f in formats if f != name):
                    request = wpb.Webhook(url=receiver.url_for(sender), format=sender, token=TOKEN)
                    made = stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=request)).webhook
                    receiver.secrets[f"/{sender}"] = TOKEN if name == "evidential" else made.secret
            client.create("running")  # created RUNNING: every format carries it
            wait_until(lambda: all(len(r.outcomes()) >= 4 for r in receivers.values()), 15)
            outcomes = {name: r.outcomes() for name, r in receivers.items()}
        for name, seen in outcomes.items():
            assert sorted(o.path for o in seen[:4]) == sorted(f"/{f}" for f in formats if f != name)
            assert [o.event for o in seen] == [None] * len(seen), name
            assert all(o.status in (400, 401) for o in seen), [(o.path, o.status, o.why) for o in seen]


class TestBadFormat:
    """An unknown format, or a filter the format cannot carry: INVALID_ARGUMENT listing the valid values."""

    @pytest.mark.parametrize(
        ("webhook", "field", "words"),
        [
            (wpb.Webhook(url="https://example.com/", format="svix"), "webhook.format", "eppo, intelligems"),
            (
                wpb.Webhook(url="https://example.com/", format="evidential", events=["experiment.updated"]),
                "webhook.events[0]",
                "experiment.created, experiment.status.updated",
            ),
        ],
    )
    def test_grpc(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], webhook: wpb.Webhook, field: str, words: str
    ) -> None:
        _, stub = live
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=webhook))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(caught.value) == [field]
        assert words in (caught.value.details() or "")

    def test_http(self, live_server: ServerThread) -> None:
        assert live_server.running is not None and live_server.running.http is not None
        body = json.dumps({"url": "https://example.com/", "format": "eppo", "events": ["webhook.test"]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{live_server.running.http.port}/v1/webhooks",
            body,
            {"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400
        status = json.loads(caught.value.read())
        [violation] = [v for d in status["details"] if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]]
        assert violation["field"] == "webhook.events[0]"
        assert "it carries: experiment.created, experiment.updated" in violation["description"]


class TestCli:
    """`webhooks add|update --format`, shown by get and list; a bad one exits 1 naming the field."""

    def test_format(self, live_server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
        def run(*argv: str) -> tuple[int, str]:
            capsys.readouterr()
            code = main([*argv, "--target", live_server.target])
            return code, capsys.readouterr().out

        with seed_receiver(CHECKS["eppo"]) as receiver:
            code, text = run("webhooks", "add", receiver.url_for("hook"), "--format", "eppo", "-o", "json")
            created = json.loads(text)
            assert code == 0 and created["format"] == "eppo"
            code, text = run("webhooks", "update", created["id"], "--format", "growthbook")
            assert code == 0 and "format                  growthbook" in text
            code, text = run("webhooks", "list")
            assert code == 0 and "growthbook" in text and "FORMAT" in text
            bad = ["webhooks", "add", receiver.url_for("x"), "--format", "nope", "--target", live_server.target]
            assert main(bad) == 1
        assert "webhook.format" in capsys.readouterr().err
