"""The pure webhook rules: signatures (checked by the standardwebhooks package), retry
schedule, Retry-After, URL rules and the SSRF address checks, event filters and events."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from assignsvc.config import ConfigError, ServerConfig, parse_duration
from assignsvc.core.egress import refusal, url_violations
from assignsvc.core.events import (
    EVENT_TYPES,
    EXPERIMENT_RERANDOMIZED,
    EXPERIMENT_STATUS_UPDATED,
    EXPERIMENT_UPDATED,
    canonical_json,
    change_events,
    event_filter_violations,
    matches,
)
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.core.retry import RetrySchedule, parse_retry_after
from assignsvc.core.signing import body_signature, format_secret, secret_key, standard_headers

SECRET = format_secret(bytes(range(32)))
OTHER = format_secret(bytes(range(1, 33)))
BODY = b'{"data":{"object":{"id":"e1"}},"id":"evt_1","type":"experiment.created"}'


def headers(secrets: list[str], timestamp: int | None = None) -> dict[str, str]:
    return standard_headers(secrets, "msg_1_wh", int(time.time()) if timestamp is None else timestamp, BODY)


class TestStandardWebhooksSignature:
    """The reference verifier accepts our headers and rejects any tampering."""

    def test_accepted(self) -> None:
        assert Verifier(SECRET).verify(BODY, headers([SECRET])) == json.loads(BODY)

    def test_tampered_body_rejected(self) -> None:
        with pytest.raises(WebhookVerificationError):
            Verifier(SECRET).verify(BODY.replace(b"e1", b"e2"), headers([SECRET]))

    def test_tampered_id_rejected(self) -> None:
        forged = {**headers([SECRET]), "webhook-id": "msg_2_wh"}
        with pytest.raises(WebhookVerificationError):
            Verifier(SECRET).verify(BODY, forged)

    def test_wrong_secret_rejected(self) -> None:
        with pytest.raises(WebhookVerificationError):
            Verifier(OTHER).verify(BODY, headers([SECRET]))

    def test_too_old_rejected(self) -> None:
        with pytest.raises(WebhookVerificationError, match="too old"):
            Verifier(SECRET).verify(BODY, headers([SECRET], int(time.time()) - 600))

    def test_rotation_both_secrets_verify(self) -> None:
        both = headers([OTHER, SECRET])
        assert len(both["webhook-signature"].split(" ")) == 2
        Verifier(SECRET).verify(BODY, both)
        Verifier(OTHER).verify(BODY, both)

    def test_signature_is_the_documented_hmac(self) -> None:
        h = headers([SECRET], 1_700_000_000)
        expected = hmac.new(bytes(range(32)), b"msg_1_wh.1700000000." + BODY, hashlib.sha256).digest()
        assert h["webhook-signature"] == "v1," + base64.b64encode(expected).decode()

    def test_body_signature_is_hex_hmac_of_data(self) -> None:
        data = {"object": {"id": "e1", "weight": 0.1}}
        expected = hmac.new(bytes(range(32)), canonical_json(data).encode(), hashlib.sha256).hexdigest()
        assert body_signature(SECRET, canonical_json(data)) == expected

    @pytest.mark.parametrize("bad", ["abc", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
    def test_bad_secrets_refused(self, bad: str) -> None:
        with pytest.raises(ValueError):
            secret_key(bad)


class TestRetrySchedule:
    """Exponential waits with jitter from an argument; attempts = waits + 1."""

    def test_default_is_five_attempts_growing(self) -> None:
        schedule = RetrySchedule()
        assert schedule.max_attempts == 5
        waits = [schedule.compute(n, 0.5) for n in range(1, 5)]
        assert waits == [5.0, 30.0, 180.0, 1080.0]
        assert schedule.compute(5, 0.5) is None
        assert schedule.compute(0, 0.5) is None

    def test_jitter_spreads_twenty_percent(self) -> None:
        schedule = RetrySchedule((10.0,))
        assert schedule.compute(1, 0.0) == pytest.approx(8.0)
        assert schedule.compute(1, 0.999999) == pytest.approx(12.0, rel=1e-5)

    def test_config_schedule_of_days(self) -> None:
        config = ServerConfig.load({"ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE": "5s,5m,30m,2h,5h,10h,10h"})
        assert config.webhook_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
        assert RetrySchedule(config.webhook_retry_schedule).max_attempts == 8

    def test_bad_config_fails_at_start(self) -> None:
        with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
            ServerConfig.load({"ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE": "5 parsecs"})
        with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_NETWORKS"):
            ServerConfig.load({"ASSIGNSVC_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/33"})
        with pytest.raises(ConfigError, match="SRM_THRESHOLD"):
            ServerConfig.load({"ASSIGNSVC_SRM_THRESHOLD": "2"})
        for bad in ("assign.example.com", "ftp://assign.example.com", "https://x.example/?a=1"):
            with pytest.raises(ConfigError, match="PUBLIC_URL"):
                ServerConfig.load({"ASSIGNSVC_PUBLIC_URL": bad})

    def test_public_url(self) -> None:
        config = ServerConfig.load({"ASSIGNSVC_PUBLIC_URL": "https://assign.example.com/base/"})
        assert config.public_url == "https://assign.example.com/base"
        assert ServerConfig.load({}).public_url == ""

    def test_durations(self) -> None:
        assert [parse_duration(s) for s in ("500ms", "5s", "2m", "1h", "1d", "7")] == [0.5, 5, 120, 3600, 86400, 7]

    def test_retry_after_seconds_and_date(self) -> None:
        assert parse_retry_after("120", 0.0) == 120.0
        assert parse_retry_after("999999999", 0.0) == 86_400.0
        now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
        assert parse_retry_after("soon", now) is None


class TestUrlRules:
    """Only http(s) URLs of sane length, with a host and no credentials."""

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http:///nohost",
            "http://u:p@example.com/",
            "http://example.com:0/",
            "http://example.com/" + "a" * 2100,
            "http://exa mple.com/",
            "http://example.com:99999/",
            "javascript:alert(1)",
        ],
    )
    def test_refused(self, url: str) -> None:
        assert url_violations(url) != []

    @pytest.mark.parametrize("url", ["https://example.com/hook", "http://203.0.113.9:8080/a?b=c"])
    def test_accepted(self, url: str) -> None:
        assert url_violations(url) == []


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class TestSsrfGuard:
    """Non-public addresses are refused (whatever their spelling); the allow-list lets some through."""

    @pytest.mark.parametrize(
        "address",
        [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:0a00:0001::1",
            "192.0.2.1",
            "198.18.0.1",
            # NAT64 and IPv4-compatible forms of private addresses, site-local (found in review)
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "::7f00:1",
            "::a00:1",
            "fec0::1",
        ],
    )
    def test_refused(self, address: str) -> None:
        assert refusal(ipaddress.ip_address(address), ()) is not None

    @pytest.mark.parametrize(
        "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
    )
    def test_public_allowed(self, address: str) -> None:
        assert refusal(ipaddress.ip_address(address), ()) is None

    def test_allow_list(self) -> None:
        assert refusal(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
        assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK) is None
        assert refusal(ipaddress.ip_address("10.0.0.1"), LOOPBACK) is not None

    def test_reason_names_the_inner_address(self) -> None:
        reason = refusal(ipaddress.ip_address("::ffff:10.0.0.1"), ())
        assert reason is not None and "10.0.0.1" in reason


BASE = Experiment(id="e1", name="", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.DRAFT)


class TestEvents:
    """Filters name known events; each change raises the events that describe it."""

    def test_unknown_event_lists_valid_ones(self) -> None:
        violations = event_filter_violations(["experiment.created", "experiment.exploded"])
        assert [v.field for v in violations] == ["webhook.events[1]"]
        assert all(name in violations[0].description for name in EVENT_TYPES)

    def test_repeated_event_refused(self) -> None:
        assert event_filter_violations(["experiment.created", "experiment.created"]) != []

    def test_matching(self) -> None:
        assert matches((), "experiment.deleted")
        assert not matches(("experiment.created",), "experiment.deleted")
        assert matches(("experiment.created",), "webhook.test")

    def test_status_change(self) -> None:
        started = dataclasses.replace(BASE, status=ExperimentStatus.RUNNING)
        assert change_events(BASE, started) == [
            (EXPERIMENT_STATUS_UPDATED, {"action": "started", "previous_status": "DRAFT"})
        ]

    def test_rerandomize(self) -> None:
        again = dataclasses.replace(BASE, bucket_version=1, seed="s2")
        assert [t for t, _ in change_events(BASE, again)] == [EXPERIMENT_RERANDOMIZED]

    def test_field_change_lists_changes(self) -> None:
        renamed = dataclasses.replace(BASE, name="new")
        assert change_events(BASE, renamed) == [
            (EXPERIMENT_UPDATED, {"changes": [{"field": "name", "old": "", "new": "new"}]})
        ]

    def test_apply_may_raise_several(self) -> None:
        both = dataclasses.replace(BASE, name="n", status=ExperimentStatus.RUNNING)
        assert [t for t, _ in change_events(BASE, both)] == [EXPERIMENT_STATUS_UPDATED, EXPERIMENT_UPDATED]
