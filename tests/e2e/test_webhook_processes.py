"""Webhook delivery across real `assignsvc serve` processes on one Redis: a server killed
with SIGKILL mid-delivery loses nothing, and two replicas make each attempt exactly once."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import Client, wait_until
from tests.support.processes import ServeProcess, serve, serve_many
from tests.support.webhook_receiver import Answer, Receiver, receiver

ALLOW = ("--webhook-allow-networks", "127.0.0.0/8")


@pytest.fixture(autouse=True)
def fast_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings the serve processes inherit: a 1 s timeout (so a 6 s lease), quick retries."""
    monkeypatch.setenv("ASSIGNSVC_WEBHOOK_TIMEOUT", "1")
    monkeypatch.setenv("ASSIGNSVC_WEBHOOK_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms")


def created_ids(hook: Receiver, status_ok: set[str]) -> set[str]:
    return {json.loads(r.body)["data"]["object"]["id"] for r in hook.received() if r.headers["webhook-id"] in status_ok}


def deliveries(target: str, webhook_id: str) -> list[wpb.Delivery]:
    client = Client.connect(target)
    try:
        stub = wgrpc.WebhookServiceStub(client.channel)
        return list(stub.ListDeliveries(wpb.ListDeliveriesRequest(webhook_id=webhook_id, page_size=1000)).deliveries)
    finally:
        client.channel.close()


@pytest.mark.slow
class TestCrash:
    """SIGKILL mid-delivery: after a restart every event is delivered, the webhook-id unchanged."""

    def test_sigkill_mid_delivery_loses_nothing(self, redis_url: str) -> None:
        with receiver() as hook:
            hook.script(Answer(delay_s=30))  # the first request hangs: the server dies during it
            first = ServeProcess("--redis-url", redis_url, *ALLOW)
            client = Client.connect(first.target)
            stub = wgrpc.WebhookServiceStub(client.channel)
            webhook = stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=wpb.Webhook(url=hook.url))).webhook
            for i in range(5):
                client.create(f"k{i}")
            wait_until(lambda: len(hook.received()) >= 1, 10)
            hung_id = hook.received()[0].headers["webhook-id"]
            first.process.kill()
            first.process.wait(10)
            client.channel.close()
            first.stop()
            with serve("--redis-url", redis_url, *ALLOW) as second:

                def all_succeeded() -> bool:
                    rows = deliveries(second.target, webhook.id)
                    return len(rows) == 5 and all(d.state == wpb.DELIVERY_STATE_SUCCEEDED for d in rows)

                wait_until(all_succeeded, 30)
                rows = deliveries(second.target, webhook.id)
            ids = Counter(r.headers["webhook-id"] for r in hook.received())
            assert ids[hung_id] == 2  # retried after the crash, same webhook-id
            assert created_ids(hook, set(ids)) == {f"k{i}" for i in range(5)}
            hung = next(d for d in rows if d.id == hung_id)
            assert "worker making this attempt was lost" in hung.attempts[0].error
            assert hung.attempts[-1].response_status == 200
            for payload in {r.body for r in hook.received() if r.headers["webhook-id"] == hung_id}:
                assert json.loads(payload)["data"]["object"]["id"].startswith("k")


@pytest.mark.slow
class TestTwoReplicas:
    """Two serve processes on one Redis: each attempt of each delivery is made by exactly one."""

    def test_each_attempt_once(self, redis_url: str) -> None:
        with receiver() as hook, serve_many(2, "--redis-url", redis_url, *ALLOW) as replicas:
            hook.first_per_id = Answer(status=500)  # every delivery: attempt 1 fails, attempt 2 succeeds
            clients = [Client.connect(r.target) for r in replicas]
            stub = wgrpc.WebhookServiceStub(clients[0].channel)
            webhook = stub.CreateWebhook(wpb.CreateWebhookRequest(webhook=wpb.Webhook(url=hook.url))).webhook
            for i in range(20):
                clients[i % 2].create(f"r{i}")
            wait_until(lambda: len(hook.received()) >= 40, 30)

            def all_recorded() -> bool:  # an attempt is logged after its answer: on a busy machine, later
                rows = deliveries(replicas[1].target, webhook.id)
                return len(rows) == 20 and all(d.state == wpb.DELIVERY_STATE_SUCCEEDED for d in rows)

            wait_until(all_recorded, 30)
            time.sleep(1.0)  # several more polls by both replicas: nothing more is sent
            per_id = Counter(r.headers["webhook-id"] for r in hook.received())
            assert len(per_id) == 20 and set(per_id.values()) == {2}
            rows = deliveries(replicas[1].target, webhook.id)
            assert len(rows) == 20
            assert all(d.state == wpb.DELIVERY_STATE_SUCCEEDED and d.attempt_count == 2 for d in rows)
            assert all([a.response_status for a in d.attempts] == [500, 200] for d in rows)
            for c in clients:
                c.channel.close()
