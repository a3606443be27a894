"""RELIABILITY F7 and F8: Postgres down for 60 s, Redis down for 60 s and restarted empty,
under steady load, with the real API serving throughout."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time

import httpx
import pytest

from storage import alerts as alert_store
from storage.cache import AlertCache
from tests.faults.conftest import RunFactory
from tests.faults.harness import readiness
from tests.integration.api_harness import ApiServer, make_key
from tonewatch import services
from tonewatch.config import Settings
from tonewatch.services.redis import RedisService

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 60.0


@pytest.mark.reliability("F7")
@pytest.mark.timeout(600)
async def test_postgres_down_for_60s_the_api_says_503_and_nothing_is_lost(
    settings: Settings, fault_run: RunFactory, api: ApiServer, figures: dict[str, object]
) -> None:
    run = fault_run(seed=7, messages=1600, rate=20.0)
    await run.start()
    token = await asyncio.to_thread(make_key, settings, run.tenant, "reader", ("read",))
    headers = {"Authorization": f"Bearer {token}"}
    run.send()
    await run.until_stored(200, timeout_s=120)
    pid = api.process.pid

    async def reported() -> bool:
        (postgres,) = await asyncio.to_thread(services.status, settings, ["postgres"])
        code, ready = await readiness(api)
        return not postgres.up and code == 503 and ready["status"] == "unavailable"

    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        async with run.fault(detected=reported):
            await asyncio.to_thread(services.down, settings, ["postgres"])
            until = time.monotonic() + OUTAGE_S
            while time.monotonic() < until:
                answers.append(await client.get("/v1/alerts", headers=headers))
                await asyncio.sleep(2)
            await asyncio.to_thread(services.up, settings, ["postgres"])
        ledger = await run.finish()
        after = await client.get("/v1/alerts", headers=headers, params={"limit": 100})
    figures.update(ledger.as_dict(), api_answers_during={str(a.status_code) for a in answers})

    ledger.assert_intact()
    assert ledger.detect_s is not None
    # The API answered 503 with Retry-After and a short JSON reason, never a stack trace...
    assert {a.status_code for a in answers} == {503}
    for answer in answers:
        assert answer.headers["retry-after"].isdigit()
        assert set(answer.json()) == {"detail"}
        assert "Traceback" not in answer.text
        assert "psycopg" not in answer.text
    # ...and its pool recovered by itself: the same process serves the alerts again.
    assert after.status_code == 200
    assert len(after.json()["items"]) == ledger.ledger.raised_alerts
    assert api.process.pid == pid
    assert api.process.poll() is None
    assert (await readiness(api))[0] == 200


class LiveClient:
    """An SSE client of /v1/alerts/stream that reconnects with Last-Event-ID when its
    connection drops (or when told to), as browsers' EventSource does."""

    def __init__(self, api: ApiServer, token: str) -> None:
        self.api, self.token = api, token
        self.ids: list[int] = []
        self.connections = 0
        self._drop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def drop(self) -> None:
        self._drop.set()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.ids:
                headers["Last-Event-ID"] = str(self.ids[-1])
            with contextlib.suppress(httpx.HTTPError):
                async with (
                    httpx.AsyncClient(base_url=self.api.url, timeout=None) as client,
                    client.stream("GET", "/v1/alerts/stream", headers=headers) as answer,
                ):
                    self.connections += 1
                    reading = asyncio.create_task(self._read(answer))
                    dropped = asyncio.create_task(self._drop.wait())
                    try:
                        await asyncio.wait({reading, dropped}, return_when=asyncio.FIRST_COMPLETED)
                    finally:  # also when close() cancels us
                        for task in (reading, dropped):
                            task.cancel()
                        await asyncio.gather(reading, dropped, return_exceptions=True)
                    self._drop.clear()
            await asyncio.sleep(0.5)

    async def _read(self, answer: httpx.Response) -> None:
        async for line in answer.aiter_lines():
            if line.startswith("id: "):
                self.ids.append(int(line[4:]))


@pytest.mark.reliability("F8")
@pytest.mark.timeout(600)
async def test_redis_down_for_60s_then_back_empty(
    settings: Settings, fault_run: RunFactory, api: ApiServer, figures: dict[str, object]
) -> None:
    run = fault_run(seed=8, messages=1600, rate=20.0)
    await run.start()
    token = await asyncio.to_thread(make_key, settings, run.tenant, "reader", ("read",))
    live = LiveClient(api, token)
    cache = AlertCache.from_settings(settings)
    redis_data = RedisService(settings).run_dir / "data"
    try:
        while not live.connections:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        run.send()
        await run.until_stored(200, timeout_s=120)

        async def reported() -> bool:
            (redis,) = await asyncio.to_thread(services.status, settings, ["redis"])
            code, ready = await readiness(api)
            checks = ready["checks"]
            assert isinstance(checks, dict)
            return not redis.up and code == 200 and checks["redis"] is False

        async with run.fault(detected=reported):
            await asyncio.to_thread(services.down, settings, ["redis"])
            shutil.rmtree(redis_data)  # it comes back empty
            await asyncio.sleep(OUTAGE_S / 2)
            live.drop()  # a client reconnects while Redis is away
            await asyncio.sleep(OUTAGE_S / 2)
            await asyncio.to_thread(services.up, settings, ["redis"])
        ledger = await run.finish()
        recorded = await alert_store.recent(run.engine, run.tenant, limit=None)
        deadline = time.monotonic() + 30
        cached = await cache.recent(run.tenant)
        while len(cached) < len(recorded) and time.monotonic() < deadline:
            await asyncio.sleep(1)
            cached = await cache.recent(run.tenant)
        deadline = time.monotonic() + 10
        while len(set(live.ids)) < len(recorded) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    finally:
        await live.close()
        await cache.close()
    ledger = run.with_live_feed(ledger, [str(event) for event in live.ids])
    figures.update(ledger.as_dict(), live_connections=live.connections,
                   live_missed=len(recorded) - len(set(live.ids)))  # fmt: skip

    ledger.assert_intact()  # no duplicate (dup_sse too): Postgres decided, with Redis away
    assert ledger.detect_s is not None
    # The recent list, wiped with Redis, was rebuilt from Postgres...
    assert sorted(a.dedup_key for a in cached) == sorted(a.dedup_key for a in recorded)
    # ...and the live client got every alert once, across its reconnections.
    assert live.connections >= 2
    assert len(live.ids) == len(set(live.ids)) == len(recorded)
