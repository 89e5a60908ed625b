"""Fixtures of the console's browser tests: one live server with auth on (datasources alpha
and beta, an admin key each, webhooks allowed to loopback) and one headless Chromium per
module, driven by Selenium through Debian's chromedriver (`make browser-deps` installs both)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from assignsvc.config import ServerConfig
from assignsvc.core.access import new_key
from assignsvc.store.redis_server import RedisServerProcess
from tests.support import ServerThread, free_port, running_server
from tests.support.http import Reply, call

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# No network here: without these Chromium waits on lookups (updates, sync, QUIC probes).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1400",
)
OPERATOR_KEY = new_key()
# Run before any page script: every Content-Security-Policy violation of the page is kept.
RECORD_CSP_VIOLATIONS = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation',"
    " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
)


@dataclass
class Console:
    """The live server, its console's URL and the tenants' admin keys."""

    server: ServerThread
    base: str
    keys: dict[str, str]  # datasource -> admin key

    @property
    def url(self) -> str:
        return self.base + "/ui/"

    def call(self, method: str, path: str, body: Any = None, *, datasource: str = "alpha", **kw: Any) -> Reply:
        """A /v1 call as an API client of `datasource` (its admin key)."""
        headers = {"X-API-Key": self.keys[datasource], "Datasource-ID": datasource, **kw.pop("headers", {})}
        return call(method, self.base + path, body, headers, **kw)

    def ok(self, method: str, path: str, body: Any = None, *, datasource: str = "alpha") -> Any:
        reply = self.call(method, path, body, datasource=datasource)
        assert reply.status == 200, reply.body
        return reply.json()


@pytest.fixture(scope="module")
def console(redis_process: RedisServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    client = redis.Redis.from_url(redis_process.url)
    client.flushall()
    client.close()
    config = ServerConfig(
        port=0,
        redis_url=redis_process.url,
        data_dir=tmp_path_factory.mktemp("data"),
        refresh_interval_s=0.2,
        grace_period_s=0.5,
        http_port=free_port(),
        auth=True,
        operator_key=OPERATOR_KEY,
        webhook_allow_networks=("127.0.0.0/8",),
        webhook_poll_interval_s=0.05,
        webhook_retry_schedule=(0.2, 0.2),  # a refused delivery is retried at once
    )
    with running_server(config) as server:
        assert server.running is not None and server.running.http is not None
        base = f"http://127.0.0.1:{server.running.http.port}"
        operator = {"X-API-Key": OPERATOR_KEY}
        keys = {}
        for datasource in ("alpha", "beta"):
            assert call("POST", base + "/v1/datasources", {"id": datasource}, operator).status == 200
            created = call(
                "POST",
                base + "/v1/apiKeys",
                {"name": f"{datasource} admin", "scopes": ["API_KEY_SCOPE_ADMIN"]},
                {**operator, "Datasource-ID": datasource},
            )
            assert created.status == 200, created.body
            keys[datasource] = created.json()["secret"]
        yield Console(server, base, keys)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module, with a fresh profile; downloads go to `downloads`."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{', '.join(missing)} missing: run `make browser-deps` (Debian's chromium and chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('profile')}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS})
        yield driver
    finally:
        driver.quit()
