"""WebhookService on a live server with a real receiver on loopback: every event type
once per change (verified with standardwebhooks), the delivery log, bad input, and
Assign unaffected by a receiver that hangs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from standardwebhooks import Webhook as Verifier

from assignsvc.cli.main import main
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import (
    Client,
    ServerThread,
    assign,
    assign_all,
    bad_request_fields,
    stats,
    wait_until,
)
from tests.support.hashing import hashed_to
from tests.support.webhook_receiver import Answer, Receiver, receiver


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def create_hook(stub: wgrpc.WebhookServiceStub, url: str, **fields: Any) -> wpb.Webhook:
    return stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=wpb.Webhook(url=url, **fields))).webhook


def bodies(hook: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every received body, each verified by the Standard Webhooks reference package."""
    return [Verifier(secret).verify(r.body, r.headers) for r in hook.received()]


class TestEveryEvent:
    """Each change arrives once, as its event, signed, with the experiment as the API returns it."""

    def test_lifecycle_events(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        client, stub = live
        webhook = create_hook(stub, hook.url)
        ex = client.experiments
        client.create("e1", status=epb.EXPERIMENT_STATUS_DRAFT)
        patch = epb.Experiment(id="e1", name="renamed")
        ex.UpdateExperiment(
            espb.UpdateExperimentRequest(experiment=patch, update_mask=field_mask_pb2.FieldMask(paths=["name"]))
        )
        ex.StartExperiment(espb.StartExperimentRequest(experiment_id="e1"))
        ex.PauseExperiment(espb.PauseExperimentRequest(experiment_id="e1"))
        ex.ResumeExperiment(espb.ResumeExperimentRequest(experiment_id="e1"))
        ex.RerandomizeExperiment(espb.RerandomizeExperimentRequest(experiment_id="e1"))
        ex.StopExperiment(espb.StopExperimentRequest(experiment_id="e1"))
        ex.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="e1"))
        test_event = stub.SendTestEvent(wpb.SendTestEventRequest(webhook_id=webhook.id)).event_id
        wait_until(lambda: len(hook.received()) == 9, 10)
        got = sorted(bodies(hook, webhook.secret), key=lambda b: b["id"])  # concurrent: any arrival order
        assert [(b["type"], b["data"].get("action")) for b in got] == [
            ("experiment.created", None),
            ("experiment.updated", None),
            ("experiment.status.updated", "started"),
            ("experiment.status.updated", "paused"),
            ("experiment.status.updated", "resumed"),
            ("experiment.rerandomized", None),
            ("experiment.status.updated", "stopped"),
            ("experiment.deleted", None),
            ("webhook.test", None),
        ]
        assert got[1]["data"]["changes"] == [{"field": "name", "old": "e1", "new": "renamed"}]
        assert got[1]["data"]["object"]["name"] == "renamed" and got[1]["data"]["object"]["etag"] == "2"
        assert got[5]["data"]["object"]["bucket_version"] == 1
        assert got[-1]["id"] == test_event
        assert len({r.headers["webhook-id"] for r in hook.received()}) == 9
        assert len({b["id"] for b in got}) == 9
        assert all(b["api_version"] and b["created"].endswith("+00:00") for b in got)
        time.sleep(0.5)
        assert len(hook.received()) == 9  # once per change, nothing repeated

    def test_srm_warning_once_per_phase(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        client, stub = live
        webhook = create_hook(stub, hook.url, events=["experiment.warning"])
        client.create("srm")
        for i in range(300):
            assign(client, "srm", f"p{i}")
        skewed = epb.Experiment(id="srm", arms=[epb.Arm(id="a0", weight=0.9), epb.Arm(id="a1", weight=0.1)])
        client.experiments.UpdateExperiment(
            espb.UpdateExperimentRequest(experiment=skewed, update_mask=field_mask_pb2.FieldMask(paths=["arms"]))
        )
        for participant in hashed_to("srm", (0.9, 0.1), 1, 100, "q"):  # only a1's participants arrive
            assign(client, "srm", participant)
        wait_until(lambda: len(hook.received()) == 1, 10)
        time.sleep(0.6)  # several more checks by the watcher: still one warning
        [body] = bodies(hook, webhook.secret)
        warning = body["data"]["warning"]
        assert body["type"] == "experiment.warning" and warning["type"] == "srm"
        assert warning["counts"]["a0"] == 0 and 0 < warning["counts"]["a1"] <= 100  # phase 1's counts only
        assert warning["p_value"] < 0.01
        assert warning["expected_weights"] == {"a0": 0.9, "a1": 0.1}
        assert (warning["bucket_version"], warning["phase"]) == (0, 1) and body["data"]["object"]["id"] == "srm"

    def test_a_weight_change_raises_no_warning(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver
    ) -> None:
        client, stub = live
        webhook = create_hook(stub, hook.url, events=["experiment.warning"])
        client.create("phased")
        assign_all(client, "phased", [f"p{i}" for i in range(2000)])
        moved = epb.Experiment(id="phased", arms=[epb.Arm(id="a0", weight=0.9), epb.Arm(id="a1", weight=0.1)])
        client.experiments.UpdateExperiment(
            espb.UpdateExperimentRequest(experiment=moved, update_mask=field_mask_pb2.FieldMask(paths=["arms"]))
        )
        assign_all(client, "phased", [f"q{i}" for i in range(2000)])  # at the true 90/10 rate
        # The watcher checks experiments in id order: once it warns about this later one,
        # it has checked "phased" with every assignment above counted.
        client.create("zz-canary")
        assign_all(client, "zz-canary", hashed_to("zz-canary", (0.5, 0.5), 0, 300, "c"))
        wait_until(lambda: len(hook.received()) == 1, 10)
        [body] = bodies(hook, webhook.secret)
        assert body["data"]["object"]["id"] == "zz-canary"
        logged = stub.ListDeliveries(wpb.ListDeliveriesRequest(webhook_id=webhook.id)).deliveries
        assert [d.event_type for d in logged] == ["experiment.warning"]  # none for "phased", ever
        assert not stats(client, "phased").srm_warning

    def test_apply_raises_the_events_of_each_change(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver
    ) -> None:
        client, stub = live
        webhook = create_hook(stub, hook.url)
        arms = [epb.Arm(id="a", weight=0.5), epb.Arm(id="b", weight=0.5)]
        first = epb.Experiment(id="ap", arms=arms, status=epb.EXPERIMENT_STATUS_DRAFT)
        client.experiments.ApplyExperiments(espb.ApplyExperimentsRequest(experiments=[first]))
        second = epb.Experiment(id="ap", name="applied", arms=arms, status=epb.EXPERIMENT_STATUS_RUNNING)
        client.experiments.ApplyExperiments(espb.ApplyExperimentsRequest(experiments=[second]))
        client.experiments.ApplyExperiments(espb.ApplyExperimentsRequest(experiments=[second]))  # unchanged
        wait_until(lambda: len(hook.received()) == 3, 10)
        time.sleep(0.3)
        got = sorted(bodies(hook, webhook.secret), key=lambda b: b["id"])
        assert [(b["type"], b["data"].get("action")) for b in got] == [
            ("experiment.created", None),
            ("experiment.status.updated", "started"),
            ("experiment.updated", None),
        ]
        assert got[2]["data"]["changes"] == [{"field": "name", "old": "ap", "new": "applied"}]

    def test_filter(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        client, stub = live
        create_hook(stub, hook.url, events=["experiment.deleted"])
        client.create("f1")
        client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="f1"))
        wait_until(lambda: len(hook.received()) == 1, 10)
        time.sleep(0.3)
        assert [json.loads(r.body)["type"] for r in hook.received()] == ["experiment.deleted"]


class TestDeliveryLog:
    """ListDeliveries pages through a webhook's deliveries, newest first, with each attempt."""

    def test_pages(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        _, stub = live
        webhook = create_hook(stub, hook.url)
        hook.script(Answer(status=500))
        sent = [stub.SendTestEvent(wpb.SendTestEventRequest(webhook_id=webhook.id)).event_id for _ in range(3)]
        wait_until(lambda: len(hook.received()) == 3, 10)

        def page(token: str) -> wpb.ListDeliveriesResponse:
            return stub.ListDeliveries(wpb.ListDeliveriesRequest(webhook_id=webhook.id, page_size=2, page_token=token))

        first = page("")
        second = page(first.next_page_token)
        assert len(first.deliveries) == 2 and len(second.deliveries) == 1 and not second.next_page_token
        rows = [*first.deliveries, *second.deliveries]
        assert [d.event_id for d in rows] == sent[::-1]
        # The three were sent concurrently: whichever arrived first got the 500.
        failed_id = hook.received()[0].headers["webhook-id"]
        [failed] = [d for d in rows if d.id == failed_id]
        assert failed.state == wpb.DELIVERY_STATE_PENDING and failed.HasField("next_attempt_time")
        assert failed.attempts[0].response_status == 500 and failed.attempts[0].error == "HTTP 500"
        assert failed.event_type == "webhook.test" and failed.attempt_count == 1
        others = [d for d in rows if d.id != failed_id]
        assert all(d.state == wpb.DELIVERY_STATE_SUCCEEDED and d.attempts[0].response_status == 200 for d in others)
        assert {d.id for d in rows} == {r.headers["webhook-id"] for r in hook.received()}
        assert all(json.loads(d.payload)["id"] == d.event_id for d in rows)


class TestWebhookService:
    """CRUD, and bad input as INVALID_ARGUMENT naming the field and the reason."""

    def test_crud(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        _, stub = live
        created = create_hook(stub, hook.url, description="d", token="t0k")
        assert created.secret.startswith("whsec_") and created.enabled and created.has_token
        got = stub.GetWebhook(wpb.GetWebhookRequest(webhook_id=created.id)).webhook
        assert got.secret == "" and got.token == "" and got.description == "d"
        update = wpb.UpdateWebhookRequest(
            webhook=wpb.Webhook(id=created.id, enabled=False, events=["experiment.created"]),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled", "events"]),
        )
        updated = stub.UpdateWebhook(update).webhook
        assert not updated.enabled and list(updated.events) == ["experiment.created"]
        rotated = stub.RotateWebhookSecret(wpb.RotateWebhookSecretRequest(webhook_id=created.id)).webhook
        assert rotated.secret != created.secret and rotated.HasField("previous_secret_expire_time")
        second = create_hook(stub, hook.url)
        listed = stub.ListWebhooks(wpb.ListWebhooksRequest(page_size=1))
        rest = stub.ListWebhooks(wpb.ListWebhooksRequest(page_size=1, page_token=listed.next_page_token))
        assert sorted([listed.webhooks[0].id, rest.webhooks[0].id]) == sorted([created.id, second.id])
        stub.DeleteWebhook(wpb.DeleteWebhookRequest(webhook_id=created.id))
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetWebhook(wpb.GetWebhookRequest(webhook_id=created.id))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    @pytest.mark.parametrize(
        ("webhook", "field", "words"),
        [
            (wpb.Webhook(url="ftp://example.com/"), "webhook.url", "http"),
            (wpb.Webhook(url="http://example.com/" + "a" * 2100), "webhook.url", "2048"),
            (wpb.Webhook(url="http://10.1.2.3/"), "webhook.url", "private"),
            (wpb.Webhook(url="http://[fd00::1]/"), "webhook.url", "private"),
            (wpb.Webhook(url="http://127.0.0.1.nip.invalid/"), "webhook.url", "resolve"),
            (
                wpb.Webhook(url="https://example.com/", events=["experiment.boom"]),
                "webhook.events[0]",
                "experiment.status.updated",
            ),
            (wpb.Webhook(url="https://example.com/", token="two words"), "webhook.token", "visible"),
        ],
    )
    def test_bad_input(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], webhook: wpb.Webhook, field: str, words: str
    ) -> None:
        _, stub = live
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=webhook))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in bad_request_fields(caught.value)
        assert words in (caught.value.details() or "")

    def test_bad_ids_and_masks(self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver) -> None:
        _, stub = live
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetWebhook(wpb.GetWebhookRequest(webhook_id="nope"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        created = create_hook(stub, hook.url)
        with pytest.raises(grpc.RpcError) as caught:
            stub.UpdateWebhook(
                wpb.UpdateWebhookRequest(
                    webhook=wpb.Webhook(id=created.id), update_mask=field_mask_pb2.FieldMask(paths=["secret"])
                )
            )
        assert bad_request_fields(caught.value) == ["update_mask"]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListDeliveries(wpb.ListDeliveriesRequest(webhook_id=created.id, page_token="garbage!"))
        assert bad_request_fields(caught.value) == ["page_token"]


class TestAssignUnaffected:
    """A receiver that hangs holds a delivery, never an Assign."""

    def test_assign_fast_while_receiver_hangs(
        self, live: tuple[Client, wgrpc.WebhookServiceStub], hook: Receiver
    ) -> None:
        client, stub = live
        create_hook(stub, hook.url)
        hook.script(*[Answer(delay_s=3)] * 5)
        client.create("busy")
        wait_until(lambda: len(hook.received()) == 1, 10)  # the delivery is now hanging
        started = time.monotonic()
        for i in range(50):
            assign(client, "busy", f"p{i}")
        assert time.monotonic() - started < 2.0


class TestCli:
    """`assignsvc webhooks add|list|get|update|test|deliveries|rotate|delete` against the live server."""

    def test_commands(self, live_server: ServerThread, hook: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
        target = live_server.target

        def run(*argv: str) -> tuple[int, str]:
            capsys.readouterr()
            code = main([*argv, "--target", target])
            return code, capsys.readouterr().out

        code, text = run("webhooks", "add", hook.url, "--events", "webhook.test,experiment.created", "-o", "json")
        created = json.loads(text)
        assert code == 0 and created["secret"].startswith("whsec_")
        hook_id = created["id"]
        code, text = run("webhooks", "list")
        assert code == 0 and hook_id in text and "webhook.test,experiment.created" in text
        code, text = run("webhooks", "test", hook_id)
        assert code == 0 and "queued webhook.test evt_" in text
        wait_until(lambda: len(hook.received()) == 1, 10)
        Verifier(created["secret"]).verify(hook.received()[0].body, hook.received()[0].headers)

        def delivered() -> bool:
            return "succeeded" in run("webhooks", "deliveries", hook_id)[1]

        wait_until(delivered, 10)
        code, text = run("webhooks", "deliveries", hook_id)
        assert "webhook.test" in text and "200" in text
        code, text = run("webhooks", "rotate", hook_id, "--grace", "1h")
        assert code == 0 and "whsec_" in text and created["secret"] not in text
        code, text = run("webhooks", "update", hook_id, "--disable")
        assert code == 0 and "enabled                 no" in text
        code, text = run("webhooks", "get", hook_id)
        assert code == 0 and "previous_secret_until" in text and "enabled                 no" in text
        code, text = run("webhooks", "delete", hook_id)
        assert code == 0 and f"deleted {hook_id}" in text
        code, _ = run("webhooks", "get", hook_id)
        assert code == 1

    def test_bad_url_exit_1_with_reason(self, live_server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["webhooks", "add", "http://192.168.1.10/x", "--target", live_server.target]) == 1
        assert "webhook.url" in capsys.readouterr().err
