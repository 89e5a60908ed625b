"""The web console at /ui: static files (package data) that call the public /v1 API.

The page holds no server-side state and no ambient credential: the browser script sends
the API key it keeps in sessionStorage as `X-API-Key` on each `/v1` call, so the console
sees exactly what any API client with that key sees (scopes, tenant isolation), and a
cross-site request carries no key (no CSRF). The files are read once at start; each is
answered with a strong ETag (304 on a match, `Cache-Control: no-cache` so a new release is
picked up at once) and a Content-Security-Policy that allows only this origin's script and
style: no inline script, no eval, no other origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

PREFIX = "/ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, read once."""

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of the static folder shipped in the package, by name."""
    assets = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return assets


def add_routes(app: web.Application) -> None:
    """Serve the console: /ui redirects to /ui/, which is index.html; /ui/NAME a static file."""
    assets = load_assets()

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=301, headers={"Location": PREFIX + "/"})

    async def serve(request: web.Request) -> web.StreamResponse:
        asset = assets.get(request.match_info.get("name") or "index.html")
        if asset is None:
            raise web.HTTPNotFound()
        headers = {**SECURITY_HEADERS, "ETag": asset.etag}
        if asset.etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})

    app.router.add_get(PREFIX, redirect)
    app.router.add_get(PREFIX + "/", serve)
    app.router.add_get(PREFIX + "/{name:[A-Za-z0-9_.-]+}", serve)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
