"""Waiting out an outage: retry one operation until it succeeds, with capped backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streams import metrics
from tonewatch.backoff import backoff_s

T = TypeVar("T")

log = logging.getLogger(__name__)


async def until_done(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    base_s: float = 0.2,
    cap_s: float = 5.0,
    on_wait: Callable[[float], None] | None = None,
) -> T:
    """Call until it succeeds, sleeping between failures of the `retry_on` kinds.

    This is how the worker applies backpressure: while a dependency is down, the batch in
    hand waits here, unacknowledged, and no further records are fetched. Anything else that
    is raised propagates. `on_wait` receives the seconds spent waiting once the call succeeds.
    """
    attempt = 0
    began = time.monotonic()
    while True:
        try:
            result = await call()
        except retry_on as exc:
            attempt += 1
            metrics.RETRIES.labels(what).inc()
            delay = backoff_s(attempt - 1, base_s, cap_s)
            # The first failure and then one line in ten: an outage is loud, not a flood.
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "%s failed (%s); attempt %d, retrying in %.1fs", what, exc, attempt, delay
                )
            await asyncio.sleep(delay)
            continue
        if attempt:
            waited = time.monotonic() - began
            log.warning("%s succeeded after %d retries (%.1fs)", what, attempt, waited)
            if on_wait is not None:
                on_wait(waited)
        return result
