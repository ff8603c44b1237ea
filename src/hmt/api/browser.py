"""What the browser UI needs beyond the JSON API: its pages, the live stream, instrument search."""

from __future__ import annotations

from fastapi import APIRouter

from hmt.api import instruments, stream
from hmt.ui import site

browser_router = APIRouter()
browser_router.include_router(stream.router)
browser_router.include_router(instruments.router)
browser_router.include_router(site.router)
