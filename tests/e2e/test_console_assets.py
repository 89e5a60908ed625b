"""The console's files as the HTTP edge serves them: /ui and its modules with a strong ETag
(304 on a match), a Content-Security-Policy that allows no inline script and no eval, no
markup built from strings in the scripts, and the files shipped in the wheel."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from assignsvc.api.http.console import CSP, load_assets
from assignsvc.config import ServerConfig
from tests.support import free_port
from tests.support.http import call

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "assignsvc" / "api" / "http" / "console" / "static"
IMPORT = re.compile(r'from "\./([A-Za-z0-9_]+\.js)"')
# DOM sinks that parse markup or code: tenant data must never reach one, so none is used at all.
SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*[\"'`]"
)


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, http_port=free_port())


def _modules(name: str, seen: set[str]) -> set[str]:
    """`name` and every module it imports, transitively."""
    seen.add(name)
    for imported in IMPORT.findall((STATIC / name).read_text()):
        if imported not in seen:
            _modules(imported, seen)
    return seen


def test_ui_is_served_with_an_etag_and_a_strict_policy(base: str) -> None:
    redirect = call("GET", base + "/ui")
    assert redirect.status == 301 and redirect.headers["location"] == "/ui/"
    page = call("GET", base + "/ui/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == CSP
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "*" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    etag = page.headers["etag"]
    again = call("GET", base + "/ui/", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    assert call("GET", base + "/ui/", headers={"If-None-Match": '"other"'}).status == 200


def test_every_module_the_page_loads_is_served(base: str) -> None:
    page = call("GET", base + "/ui/").body.decode()
    entry = re.findall(r'<script type="module" src="([^"]+)"></script>', page)
    assert entry == ["app.js"]
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page)
    for name in [*_modules("app.js", set()), *styles]:
        reply = call("GET", f"{base}/ui/{name}")
        assert reply.status == 200, name
        assert reply.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), name
        assert reply.headers["etag"] == load_assets()[name].etag
    missing = call("GET", base + "/ui/nothing.js")
    assert missing.status == 404 and missing.json()["code"] == 5


def test_no_inline_code_and_no_markup_sinks() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script is a file
    assert re.findall(r"\son[a-z]+=|style=|<style", page) == []
    for script in STATIC.glob("*.js"):
        assert SINKS.findall(script.read_text()) == [], script.name


def test_the_wheel_ships_every_console_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("assignsvc-*.whl")
    shipped = {Path(name).name for name in zipfile.ZipFile(wheel).namelist() if "/console/static/" in name}
    assert shipped == {path.name for path in STATIC.iterdir()}
