"""Serves the UI's pages and static files, each with a strict CSP and the usual safety headers.

The pages are plain HTML with no inline script or style: all behaviour is in
static/*.js, which talks to the JSON API with the token from sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidate: an upgrade must not leave old scripts behind
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def dashboard() -> FileResponse:
    return _page("dashboard.html")


@router.get("/ui/performance")
async def performance_page() -> FileResponse:
    return _page("performance.html")


@router.get("/ui/accounts")
async def accounts_page() -> FileResponse:
    return _page("accounts.html")


@router.get("/ui/backtest")
async def backtest_page() -> FileResponse:
    return _page("backtest.html")


@router.get("/ui/triggers/{trigger_id}")
async def trigger_page(trigger_id: str) -> FileResponse:
    # The page is the same for every id: its script reads the id from the path
    # and fetches the trigger with the caller's token (404 if it is not theirs).
    del trigger_id
    return _page("trigger.html")


@router.get("/ui/static/{name:path}")
async def static(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise HTTPException(404, "no such file")
    media_type = MEDIA_TYPES.get(path.suffix) or (
        "text/plain; charset=utf-8" if path.name in ("LICENSE", "NOTICE") else None
    )
    if media_type is None:
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=media_type, headers=STATIC_HEADERS)


def _page(name: str) -> FileResponse:
    return FileResponse(
        TEMPLATES / name, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )
