"""The FastAPI application: routers, guards, error mapping, metrics and the web pages.

Errors are JSON `{"detail": ...}` with a 4xx or 503, never a stack trace: Postgres or
Redis being down is a 503 with Retry-After, and anything unexpected is a logged, bare 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram

from storage.exceptions import CacheUnavailable, DatabaseUnavailable
from tonewatch.api import alerts, health, keys, labeling, models, pages, subscriptions
from tonewatch.api.guards import BodyGuard
from tonewatch.api.state import ApiState
from tonewatch.config import Settings

STATIC: Final = Path(__file__).resolve().parent / "static"
MAX_VALIDATION_ERRORS: Final = 10
# A dependency that is down is a 503 with Retry-After, named in the answer.
UNAVAILABLE: Final[dict[type[Exception], str]] = {
    DatabaseUnavailable: "database",
    CacheUnavailable: "live cache",
}

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "tonewatch_api_requests_total", "API requests by route, method and status",
    ["route", "method", "status"],
)  # fmt: skip
LATENCY = Histogram("tonewatch_api_request_seconds", "API request time by route", ["route"])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState.open(settings)
        app.state.tonewatch = state
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="tonewatch",
        summary="Sentiment and risk alerts over news, reviews and support chats.",
        version="1",
        lifespan=lifespan,
    )
    for module in (health, keys, alerts, subscriptions, labeling, models, pages):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", lambda: RedirectResponse("/ui/feed"), include_in_schema=False)
    _add_error_handlers(app)
    app.middleware("http")(_count_requests)
    # Outermost: refuse oversized and hostile bodies before anything reads them.
    app.add_middleware(
        BodyGuard, max_bytes=settings.api_max_body_bytes, max_depth=settings.api_json_max_depth
    )
    return app


async def _count_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


def _add_error_handlers(app: FastAPI) -> None:
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("503 on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"the {UNAVAILABLE[type(exc)]} is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for error in UNAVAILABLE:
        app.add_exception_handler(error, unavailable)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes every error with its input: a million-element array
        # would answer with a million errors. Keep the first few, without inputs.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()[:MAX_VALIDATION_ERRORS]
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("500 on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)
