"""Steps a person takes in the console, as Selenium calls with explicit waits (never sleeps)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import Console

WAIT_S = 15
T = TypeVar("T")
# Where the tests' screenshots go: build/screenshots (ignored by git), or the folder
# ASSIGNSVC_SCREENSHOTS names (`make screenshots` renews docs/images, which docs link to).
ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(os.environ.get("ASSIGNSVC_SCREENSHOTS") or ROOT / "build" / "screenshots")


def until(browser: WebDriver, condition: Callable[[WebDriver], T], message: str = "") -> T:
    """Wait for `condition` (a stale or missing element counts as not yet)."""
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    result: T = wait.until(condition, message)
    return result


def css(browser: WebDriver, selector: str) -> WebElement:
    """The first element matching `selector`, once it is shown."""
    element = until(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, selector)), selector)
    assert isinstance(element, WebElement)
    return element


def present(browser: WebDriver, selector: str) -> WebElement:
    """The first element matching `selector`, once it is in the page (shown or not)."""
    element: WebElement = until(browser, ec.presence_of_element_located((By.CSS_SELECTOR, selector)), selector)
    return element


def heading(browser: WebDriver, text: str) -> None:
    until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "main h1").text == text, f"heading {text!r}")


def fill(browser: WebDriver, selector: str, value: str) -> None:
    element = css(browser, selector)
    element.clear()
    element.send_keys(value)


def field(name: str) -> str:
    """The selector of the input of an API field path."""
    return f'[data-field="{name}"]'


def choose(browser: WebDriver, selector: str, value: str) -> None:
    Select(css(browser, selector)).select_by_value(value)


def sign_in(browser: WebDriver, console: Console, datasource: str, key: str | None = None) -> None:
    browser.get(console.url + "#/signin")
    css(browser, "#signin-form")
    fill(browser, field("datasource"), datasource)
    fill(browser, field("api_key"), key if key is not None else console.keys[datasource])
    css(browser, "#signin-form button[type=submit]").click()
    heading(browser, "Experiments")


def go(browser: WebDriver, console: Console, hash_path: str, title: str) -> None:
    browser.get(console.url + hash_path)
    heading(browser, title)


def texts(browser: WebDriver, selector: str) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def pwned(browser: WebDriver) -> Any:
    """What an injected payload would have set (None: nothing ran)."""
    return browser.execute_script("return window.__pwned === undefined ? null : window.__pwned")


def csp_violations(browser: WebDriver) -> Any:
    """What the page's Content-Security-Policy refused since it loaded (the console needs nothing refused)."""
    return browser.execute_script("return window.__csp")


def screenshot(browser: WebDriver, name: str) -> None:
    """A full-page screenshot into IMAGES."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    size = browser.get_window_size()
    browser.set_window_size(size["width"], min(max(height + 120, 600), 4000))
    try:
        browser.find_element(By.TAG_NAME, "body").screenshot(str(IMAGES / name))
    finally:
        browser.set_window_size(size["width"], size["height"])
