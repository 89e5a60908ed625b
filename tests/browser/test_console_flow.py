"""The console in a real headless Chromium, walking what a person does: sign in, create an
experiment (the API's violations shown next to the fields), start it, watch the per-arm
counts and chart follow assignments made through the API, reweight, stop, download the
assignments and find the export's rows, add a webhook to a local receiver, send a test
event and see it SUCCEEDED in the delivery log, create a key, revoke it and be signed out."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from assignsvc.v1 import experiment_service_pb2, webhook_service_pb2
from tests.browser.conftest import Console
from tests.browser.pages import (
    choose,
    csp_violations,
    css,
    field,
    fill,
    go,
    heading,
    present,
    screenshot,
    sign_in,
    texts,
    until,
)
from tests.support.webhook_receiver import Answer, receiver

PARTICIPANTS = 60


def _chart_counts(browser: WebDriver) -> dict[str, int]:
    """Stored assignments per arm as the charts' accessible titles state them (summed over phases)."""
    present(browser, "#allocation svg title")
    counts: dict[str, int] = {}
    for title in browser.find_elements(By.CSS_SELECTOR, "#allocation svg title"):
        for part in (title.get_attribute("textContent") or "").split(": ", 1)[1].split("; "):
            arm, rest = part.split(": ", 1)
            counts[arm] = counts.get(arm, 0) + int(rest.split(" ", 1)[0])
    return counts


def _stats_have_phases() -> bool:
    return "phases" in experiment_service_pb2.GetExperimentStatsResponse.DESCRIPTOR.fields_by_name


def _stop_takes_a_released_arm() -> bool:
    return "released_arm_id" in experiment_service_pb2.StopExperimentRequest.DESCRIPTOR.fields_by_name


def _create_with_a_refusal_first(browser: WebDriver, console: Console) -> None:
    """Create "checkout" in the form; a bad weight first shows the API's message by the arms."""
    sign_in(browser, console, "alpha")
    css(browser, "a.button[href='#/experiments/new']").click()
    heading(browser, "New experiment")
    fill(browser, field("experiment.id"), "checkout")
    fill(browser, field("experiment.name"), "Checkout button")
    fill(browser, field("experiment.arms[1].weight"), "0.7")
    fill(browser, field("experiment.arms[1].value"), '{"color": "green"}')
    fill(browser, field("experiment.arms[0].value"), '{"color": "grey"}')
    css(browser, "#create-form button[type=submit]").click()
    note = css(browser, '[data-field="experiment.arms"] .violation')
    assert "weights must sum to 1" in note.text  # the API's own message, next to the arms

    fill(browser, field("experiment.arms[1].weight"), "0.5")
    css(browser, "#create-form button[type=submit]").click()
    heading(browser, "Checkout button")
    assert css(browser, ".title [data-status]").text == "draft"
    assert texts(browser, "#arms td code") == ['{"color":"grey"}', '{"color":"green"}']


def _download_and_compare(browser: WebDriver, console: Console, downloads: Path) -> None:
    """Both downloads hold exactly the export's rows."""
    css(browser, "#download-csv").click()
    downloaded = downloads / "checkout-assignments.csv"
    until(browser, lambda b: downloaded.exists() and downloaded.stat().st_size > 0, "the CSV download")
    export = console.call("GET", "/v1/experiments/checkout/assignments", headers={"Accept": "text/csv"})
    assert export.status == 200
    assert sorted(downloaded.read_text().splitlines()) == sorted(export.body.decode().splitlines())
    assert len(list(csv.DictReader(io.StringIO(downloaded.read_text())))) == 2 * PARTICIPANTS

    css(browser, "#download-json").click()
    as_json = downloads / "checkout-assignments.json"
    until(browser, lambda b: as_json.exists() and as_json.stat().st_size > 0, "the JSON download")
    rows = {(r["participantId"], r["armId"]) for r in json.loads(as_json.read_text())["assignments"]}
    assert rows == {(r["participant_id"], r["arm_id"]) for r in csv.DictReader(io.StringIO(downloaded.read_text()))}


def test_create_start_assign_reweight_stop_download(browser: WebDriver, console: Console, downloads: Path) -> None:
    _create_with_a_refusal_first(browser, console)
    css(browser, "#action-start").click()
    until(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".title [data-status]").text == "running")

    for i in range(PARTICIPANTS):
        console.ok("POST", f"/v1/experiments/checkout/participants/user-{i}:assign", {})
    stats = console.ok("GET", "/v1/experiments/checkout/stats")
    expected = {arm["armId"]: int(arm.get("assignments", 0)) for arm in stats["arms"]}
    assert sum(expected.values()) == PARTICIPANTS
    until(browser, lambda b: _chart_counts(b) == expected, "the chart follows the stored counts")
    srm = "#allocation [data-srm]"
    until(browser, lambda b: b.find_element(By.CSS_SELECTOR, srm).get_attribute("data-srm") in ("healthy", "warning"))

    fill(browser, field("experiment.arms[0].weight"), "0.2")
    fill(browser, field("experiment.arms[1].weight"), "0.8")
    css(browser, "#reweight-form button[type=submit]").click()
    until(browser, lambda b: [t for t in texts(b, "#arms td.n")] == ["20.0%", "80.0%"], "new weights shown")
    if _stats_have_phases():  # the reweight started a phase: one chart each
        until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#allocation [data-phase]")) == 2, "2 phases")
    until(browser, lambda b: _chart_counts(b) == expected, "stored participants keep their arm")
    assert texts(browser, "#arms td code") == ['{"color":"grey"}', '{"color":"green"}']  # values kept
    for i in range(PARTICIPANTS, 2 * PARTICIPANTS):
        console.ok("POST", f"/v1/experiments/checkout/participants/user-{i}:assign", {})
    until(browser, lambda b: sum(_chart_counts(b).values()) == 2 * PARTICIPANTS, "the new participants counted")
    screenshot(browser, "console-experiment.png")
    assert csp_violations(browser) == []

    releasable = _stop_takes_a_released_arm()
    offered = browser.find_elements(By.CSS_SELECTOR, field("released_arm_id"))
    assert bool(offered) == releasable  # offered exactly when the API takes it (its /openapi.json)
    if releasable:
        choose(browser, field("released_arm_id"), "treatment")
    css(browser, "#stop-form button[type=submit]").click()
    until(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".title [data-status]").text == "stopped")
    if releasable:
        assert "treatment" in css(browser, ".facts").text

    _download_and_compare(browser, console, downloads)


def test_webhook_test_event_succeeds_in_the_delivery_log(browser: WebDriver, console: Console) -> None:
    sign_in(browser, console, "alpha")
    with receiver() as hook:
        go(browser, console, "#/webhooks", "Webhooks")
        fill(browser, field("webhook.url"), hook.url)
        fill(browser, field("webhook.description"), "Recent events")
        formats = "format" in webhook_service_pb2.Webhook.DESCRIPTOR.fields_by_name
        assert bool(browser.find_elements(By.CSS_SELECTOR, field("webhook.format"))) == formats
        if formats:
            choose(browser, field("webhook.format"), "intelligems")  # a format with a test event
        css(browser, "#webhook-form input[value='webhook.test']").click()
        css(browser, "#webhook-form button[type=submit]").click()
        secret = css(browser, ".secret .secret-value").text
        assert secret.startswith("whsec_")
        if formats:
            assert "intelligems" in css(browser, "#webhooks tbody tr").text
        css(browser, "#webhooks tbody a").click()
        hook.script(Answer(status=503))  # the first attempt is refused, the retry succeeds
        css(browser, "#send-test").click()
        row = "#delivery-log tr[data-state='succeeded']"
        until(browser, lambda b: "webhook.test" in css(b, row).text, "a SUCCEEDED test delivery")
        assert css(browser, row + " td:nth-child(5)").text == "200"  # the last attempt's status
        css(browser, row + " details summary").click()
        attempts = texts(browser, row + " details li")
        assert len(attempts) == 2 and "503" in attempts[0] and "200" in attempts[1]
        assert len(hook.received()) == 2
        screenshot(browser, "console-deliveries.png")
        assert csp_violations(browser) == []

        css(browser, "#rotate-secret").click()
        rotated = css(browser, "#webhook-result .secret-value").text
        assert rotated.startswith("whsec_") and rotated != secret


def test_a_revoked_key_signs_the_console_out(browser: WebDriver, console: Console) -> None:
    sign_in(browser, console, "alpha")
    go(browser, console, "#/keys", "API keys")
    fill(browser, field("api_key.name"), "laptop")
    css(browser, "#key-form input[value='admin']").click()
    css(browser, "#key-form button[type=submit]").click()
    secret = css(browser, ".secret .secret-value").text
    assert secret

    sign_in(browser, console, "alpha", secret)  # the new key works
    go(browser, console, "#/keys", "API keys")
    key_row = until(
        browser,
        lambda b: next(r for r in b.find_elements(By.CSS_SELECTOR, "#keys tbody tr") if "laptop" in r.text),
    )
    revoke = key_row.find_element(By.CSS_SELECTOR, "[data-revoke]")
    revoke.click()
    revoke.click()  # confirm

    def signed_out(b: WebDriver) -> bool:
        if b.find_elements(By.ID, "signin-reason"):
            return True
        b.find_element(By.CSS_SELECTOR, "#nav a[href='#/experiments']").click()
        return False

    until(browser, signed_out, "the sign-in page")
    assert "Signed out" in css(browser, "#signin-reason").text
    assert browser.execute_script("return sessionStorage.length") == 1  # only the reason: no key kept


def test_every_lifecycle_action_and_a_refusal_by_its_field(browser: WebDriver, console: Console) -> None:
    sign_in(browser, console, "alpha")
    go(browser, console, "#/experiments/new", "New experiment")
    fill(browser, field("experiment.id"), "lifecycle")
    fill(browser, field("experiment.arms[0].id"), "bad id!")
    css(browser, "#create-form button[type=submit]").click()
    note = css(browser, "#create-form .violation")
    arm_id_input = css(browser, field("experiment.arms[0].id"))
    assert arm_id_input.get_attribute("aria-invalid") == "true"
    assert note.find_element(By.XPATH, "preceding-sibling::*[1]") == arm_id_input  # right by the arm's id
    fill(browser, field("experiment.arms[0].id"), "control")
    css(browser, "#create-form button[type=submit]").click()
    heading(browser, "lifecycle")

    def status_after(button: str, status: str) -> None:
        css(browser, button).click()
        until(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".title [data-status]").text == status, status)

    status_after("#action-start", "running")
    status_after("#action-pause", "paused")
    status_after("#action-resume", "running")
    css(browser, "#rerandomize-form button[type=submit]").click()
    until(browser, lambda b: len(Select(b.find_element(By.ID, "bucket-version")).options) == 2, "bucket version 1")
    assert console.ok("GET", "/v1/experiments/lifecycle")["experiment"]["bucketVersion"] == 1

    console.ok("PATCH", "/v1/experiments/lifecycle?updateMask=name", {"name": "renamed elsewhere"})
    css(browser, "#action-pause").click()  # the page's etag is stale now: refused, nothing changes
    assert "etag" in css(browser, "#action-result .error").text.lower()
    assert console.ok("GET", "/v1/experiments/lifecycle")["experiment"]["status"] == "EXPERIMENT_STATUS_RUNNING"

    browser.refresh()
    heading(browser, "renamed elsewhere")
    delete = css(browser, "#action-delete")
    delete.click()
    delete.click()  # confirmed
    heading(browser, "Experiments")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-experiment-id='lifecycle']") == []
    assert console.call("GET", "/v1/experiments/lifecycle").status == 404
