"""The console's security and reach in a real headless Chromium: every value a tenant
controls is shown as text (a payload with <script>, quotes and event handlers runs nothing
and adds no element), a datasource's key never shows another's data, a wrong key returns to
the sign-in page with the API's reason, and the pages work by keyboard and at phone width."""

from __future__ import annotations

import json

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import Console
from tests.browser.pages import csp_violations, css, go, heading, pwned, sign_in, texts, until
from tests.support.webhook_receiver import receiver

LONG_NAME = "Unbroken" + "x" * 120  # no break opportunity: the page must wrap it itself
PAYLOAD = '<script>window.__pwned=1</script>"\'><img src=x onerror="window.__pwned=2">'


def _experiment(console: Console, experiment_id: str, name: str) -> None:
    arms = [{"id": "a", "weight": 0.5}, {"id": "b", "weight": 0.5}]
    console.ok("POST", "/v1/experiments", {"id": experiment_id, "name": name, "arms": arms})


def _injected(browser: WebDriver) -> int:
    """Elements a payload parsed as markup would have added to the page."""
    return len(browser.find_elements(By.CSS_SELECTOR, "main script, main img, main iframe"))


def test_tenant_values_are_shown_as_text_and_nothing_runs(browser: WebDriver, console: Console) -> None:
    arms = [
        {"id": "a", "name": PAYLOAD, "weight": 0.5, "value": PAYLOAD},
        {"id": "b", "weight": 0.5, "value": "<b onmouseover=alert(1)>b</b>"},
    ]
    condition = '{"country": "' + PAYLOAD.replace('"', '\\"') + '"}'
    console.ok("POST", "/v1/experiments", {"id": "xss", "name": PAYLOAD, "arms": arms, "condition": condition})
    with receiver() as hook:
        created = console.ok("POST", "/v1/webhooks", {"url": hook.url + "?q=%3Cscript%3E", "description": PAYLOAD})
    webhook_id = created["webhook"]["id"]

    sign_in(browser, console, "alpha")
    link = css(browser, "#experiments tr[data-experiment-id='xss'] a")
    assert link.text == PAYLOAD
    assert _injected(browser) == 0
    link.click()
    heading(browser, PAYLOAD)
    assert texts(browser, "#arms td code")[0] == '"' + PAYLOAD.replace('"', '\\"') + '"'
    assert json.loads(css(browser, "pre.condition").text) == {"country": PAYLOAD}
    assert _injected(browser) == 0

    go(browser, console, "#/webhooks", "Webhooks")
    assert PAYLOAD in css(browser, f"#webhooks tr[data-webhook-id='{webhook_id}']").text
    go(browser, console, f"#/webhooks/{webhook_id}", f"Webhook {webhook_id}")
    assert PAYLOAD in css(browser, ".facts").text
    assert _injected(browser) == 0
    assert pwned(browser) is None
    assert csp_violations(browser) == []  # nothing was even tried


def test_a_key_sees_only_its_own_datasource(browser: WebDriver, console: Console) -> None:
    arms = [{"id": "a", "weight": 0.5}, {"id": "b", "weight": 0.5}]
    console.ok("POST", "/v1/experiments", {"id": "beta-only", "arms": arms}, datasource="beta")
    with receiver() as hook:
        beta_hook = console.ok("POST", "/v1/webhooks", {"url": hook.url}, datasource="beta")["webhook"]["id"]

    sign_in(browser, console, "alpha")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-experiment-id='beta-only']") == []
    browser.get(console.url + "#/experiments/beta-only")
    assert "not found" in css(browser, "main .error").text
    go(browser, console, "#/webhooks", "Webhooks")
    assert browser.find_elements(By.CSS_SELECTOR, f"tr[data-webhook-id='{beta_hook}']") == []

    sign_in(browser, console, "beta")  # the same pages do show beta's own data
    css(browser, "tr[data-experiment-id='beta-only']")
    go(browser, console, "#/webhooks", "Webhooks")
    css(browser, f"tr[data-webhook-id='{beta_hook}']")


def test_the_key_stays_in_session_storage_until_sign_out(browser: WebDriver, console: Console) -> None:
    sign_in(browser, console, "alpha")
    assert console.keys["alpha"] not in browser.current_url
    assert browser.execute_script("return document.cookie") == ""
    stored = browser.execute_script("return sessionStorage.getItem('assignsvc.console.credentials')")
    assert json.loads(stored) == {"datasource": "alpha", "apiKey": console.keys["alpha"]}
    css(browser, "#signout").click()
    heading(browser, "Sign in")
    assert browser.find_elements(By.ID, "signin-reason") == []  # signed out by choice: no reason shown
    assert browser.execute_script("return sessionStorage.length") == 0
    browser.get(console.url + "#/experiments")  # a page needs signing in again
    heading(browser, "Sign in")


def test_a_wrong_key_returns_to_sign_in_with_the_reason(browser: WebDriver, console: Console) -> None:
    browser.get(console.url + "#/signin")
    css(browser, "#signin-form [data-field='api_key']").send_keys(console.keys["beta"])  # beta's key, for alpha
    css(browser, "#signin-form [data-field='datasource']").clear()
    css(browser, "#signin-form [data-field='datasource']").send_keys("alpha")
    css(browser, "#signin-form button[type=submit]").click()
    reason = css(browser, "#signin-reason").text
    assert reason.startswith("Signed out:") and "key" in reason
    assert browser.execute_script("return sessionStorage.getItem('assignsvc.console.credentials')") is None


def test_keyboard_only_sign_in_and_navigation(browser: WebDriver, console: Console) -> None:
    _experiment(console, "keyboard", "Reached by keyboard")
    browser.get(console.url + "#/signin")
    css(browser, "#signin-form")
    keys = ActionChains(browser)
    keys.key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys("alpha")  # focus starts in the form
    keys.send_keys(Keys.TAB, console.keys["alpha"], Keys.ENTER).perform()
    heading(browser, "Experiments")
    css(browser, "#filter").send_keys("keyboard")
    until(browser, lambda b: texts(b, "#experiments tbody tr:not([hidden]) a") == ["Reached by keyboard"], "filter")
    ActionChains(browser).send_keys(Keys.TAB).perform()  # from the filter to the status select
    assert browser.switch_to.active_element.get_attribute("id") == "filter-status"
    css(browser, "#experiments tbody tr:not([hidden]) a").send_keys(Keys.ENTER)
    heading(browser, "Reached by keyboard")


def test_pages_fit_a_phone(browser: WebDriver, console: Console) -> None:
    _experiment(console, "phone", LONG_NAME)
    size = browser.get_window_size()
    browser.set_window_size(390, 844)
    try:
        sign_in(browser, console, "alpha")
        for path, title in (
            ("#/experiments", "Experiments"),
            ("#/experiments/phone", LONG_NAME),
            ("#/keys", "API keys"),
        ):
            go(browser, console, path, title)
            overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            wide = browser.execute_script(
                "return [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > "
                "window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px: {wide}"
    finally:
        browser.set_window_size(size["width"], size["height"])
