"""The web pages: plain HTML files from `static/`, each driven by its own ES module.

The pages hold no data: they call the JSON API with the `tw_key` session cookie, and send
the visitor to the login page when `GET /v1/me` answers 401. Their scripts and styles are
all same-origin files, so a strict Content-Security-Policy forbids anything injected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC: Final = Path(__file__).resolve().parent / "static"
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The HTML is tiny and changes with the code: always revalidate.
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


def page(name: str) -> FileResponse:
    """One page's HTML with the security headers."""
    return FileResponse(STATIC / f"{name}.html", media_type="text/html", headers=HEADERS)


@router.get("/login")
async def login() -> FileResponse:
    return page("login")


@router.get("/feed")
async def feed() -> FileResponse:
    return page("feed")


@router.get("/entity")
async def entity() -> FileResponse:
    """The charts of one entity; the page reads `source` and `entity` from the query."""
    return page("entity")


@router.get("/label")
async def label() -> FileResponse:
    return page("label")


@router.get("/models")
async def models() -> FileResponse:
    return page("models")
