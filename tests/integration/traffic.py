"""Classify calls in a loop against the real Triton, with retries off, so that every
failed inference counts (RELIABILITY F6, M2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from inference.client import TritonClassifier
from tonewatch.config import Settings


@dataclass
class Traffic:
    """Responses (start, version) and failures of classify calls running in a loop."""

    responses: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def versions_since(self, started: float) -> set[str]:
        return {version for t, version in self.responses if t >= started}

    async def until(self, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"traffic stalled: {self.failures[:3]}"
            await asyncio.sleep(0.05)

    async def more(self, n: int = 20) -> None:
        """Wait for `n` more responses."""
        target = len(self.responses) + n
        await self.until(lambda: len(self.responses) >= target)


@asynccontextmanager
async def traffic(
    settings: Settings, name: str, texts: Sequence[str], tasks: int = 8
) -> AsyncIterator[Traffic]:
    """`tasks` concurrent callers classifying in a loop; no retries, so every Triton error
    counts as a failed request."""
    seen = Traffic()
    stop = asyncio.Event()
    classifier = TritonClassifier(settings.triton_grpc_url, name, timeout_s=30.0, retries=0)

    async def caller(i: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                predictions = await classifier.classify(list(texts[: 1 + i % len(texts)]))
            except Exception as exc:  # every kind of failure is what we count
                seen.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            seen.responses += [(started, p.model_version) for p in predictions]

    running = [asyncio.create_task(caller(i)) for i in range(tasks)]
    try:
        await seen.more(tasks)  # traffic flows before anything changes
        yield seen
    finally:
        stop.set()
        await asyncio.gather(*running)
        await classifier.close()
