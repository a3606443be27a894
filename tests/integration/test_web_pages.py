"""The web pages in headless Chromium against the real API, Postgres and Redis.

One walk through the pages, as a person would use them: sign in, watch an alert arrive
live on the feed, label three items with the keyboard only (the verdicts land in Postgres),
look at an entity's charts and at the models, sign out. Any browser console error fails it.
Screenshots of the feed and the labelling page go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage import messages
from storage.cache import AlertCache
from storage.tables import FeedbackRow, Message
from tests.integration.api_harness import ApiServer, new_tenant
from tonewatch.config import Settings
from tonewatch.contracts import RISK_LABELS, Alert, InputMessage, Origin, ScoredMessage
from tonewatch.services.system_packages import apt_install

pytestmark = pytest.mark.integration

CHROMIUM: Final = Path("/usr/bin/chromium")
SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ENTITY: Final = "ACME"
LOW_RISK: Final = {r: 0.02 for r in RISK_LABELS if r != "fraud"}

# (text, predicted sentiment, scores, P(fraud)) of the messages waiting to be labelled.
QUEUED: Final = [
    ("ACME shares slide as auditors flag irregular revenue", "negative", (0.55, 0.3, 0.15), 0.62),
    ("ACME to present at the industry conference next week", "neutral", (0.25, 0.5, 0.25), 0.05),
    ("ACME beats estimates and raises its full-year outlook", "positive", (0.1, 0.35, 0.55), 0.03),
    ("Regulator opens an inquiry into ACME's accounting", "negative", (0.48, 0.42, 0.1), 0.44),
    ("ACME names a new chief financial officer", "neutral", (0.3, 0.45, 0.25), 0.1),
]


def scored_message(tenant: str, n: int, at: datetime) -> ScoredMessage:
    text, sentiment, (neg, neu, pos), fraud = QUEUED[n]
    return ScoredMessage(
        message=InputMessage(
            id=f"web-{n}", source="news", text=text, tenant=tenant, entity=ENTITY, ts=at
        ),
        origin=Origin(topic="news", partition=0, offset=n),
        sentiment=sentiment,
        scores={"negative": neg, "neutral": neu, "positive": pos},
        risks={"fraud": fraud, **LOW_RISK},
        model_version="1",
        scored_at=at,
    )


def make_alert(tenant: str, n: int, at: datetime, **fields: Any) -> Alert:
    values: dict[str, Any] = {
        "dedup_key": f"{tenant}:web:{n}",
        "tenant": tenant,
        "kind": "negative_spike",
        "severity": "medium",
        "source": "news",
        "entity": ENTITY,
        "window_start": at - timedelta(minutes=5),
        "window_end": at,
        "figures": {"negative_share": 0.64, "baseline_share": 0.21, "volume": 14},
        "evidence": [f"web-{n}-a", f"web-{n}-b", f"web-{n}-c"],
        "summary": f"Negative news on {ENTITY}: 64% negative against a 21% baseline",
        "model_version": "1",
        "created_at": at,
    } | fields
    return Alert.model_validate(values)


def chromium() -> str:
    if not CHROMIUM.exists():
        apt_install("chromium")
    return str(CHROMIUM)


async def feedback_rows(engine: AsyncEngine, tenant: str, count: int) -> dict[str, Any]:
    """message id -> feedback row, once the tenant has `count` rows (the page posts them
    after moving on, so they may land a moment after the keys)."""
    query = (
        select(Message.message_id, FeedbackRow.sentiment, FeedbackRow.risks,
               FeedbackRow.prediction_correct)
        .join(Message, Message.id == FeedbackRow.message_pk)
        .where(FeedbackRow.tenant == tenant)
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if len(rows) >= count or time.monotonic() > deadline:
            return {row.message_id: row for row in rows}
        await asyncio.sleep(0.2)


async def shown_item(page: Page, previous: str | None = None) -> int:
    """The index in QUEUED of the item on screen (waits for it to differ from `previous`)."""
    item = page.locator("#item[data-message-id]")
    if previous is not None:
        await expect(item).not_to_have_attribute("data-message-id", previous)
    message_id = await item.get_attribute("data-message-id")
    assert message_id is not None
    return int(message_id.removeprefix("web-"))


async def test_pages_sign_in_live_feed_keyboard_labelling_charts_and_models(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    tenant = new_tenant(settings, analyst=("read", "label"))
    now = datetime.now(UTC)
    await messages.record(
        engine,
        [scored_message(tenant.name, n, now - timedelta(minutes=50 - 10 * n)) for n in range(5)],
    )
    history = [
        make_alert(
            tenant.name, 1, now - timedelta(minutes=40), severity="low", kind="volume_spike",
            summary=f"Volume on {ENTITY} is 3.1x its usual level",
            figures={"volume": 31, "baseline_volume": 10},
        ),
        make_alert(
            tenant.name, 2, now - timedelta(minutes=25), severity="high", kind="message_risk",
            summary=f"Fraud risk in news about {ENTITY}: auditors flag irregular revenue",
            figures={"fraud": 0.93}, evidence=["web-0"],
        ),
    ]  # fmt: skip
    await alert_store.record(engine, history)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url')})")

    cache = AlertCache.from_settings(settings)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        try:
            # Signed out, a page sends the visitor to the login page (GET /v1/me is a 401,
            # which the console reports: expected here, so forgotten).
            await page.goto(f"{api.url}/ui/feed")
            await page.wait_for_url("**/ui/login?next=%2Fui%2Ffeed")
            assert all("401" in e for e in errors), errors
            errors.clear()

            await page.get_by_label("API key").fill(tenant["analyst"])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/ui/feed")
            await expect(page.get_by_test_id("who")).to_contain_text(tenant.name)
            await expect(page.locator("#status")).to_have_attribute("data-state", "live")
            cards = page.locator("article.card")
            await expect(cards).to_have_count(2)

            # An alert arrives the way the sink writes it: Postgres, then Redis.
            live = make_alert(
                tenant.name, 3, datetime.now(UTC), severity="critical",
                summary=f"Negative news on {ENTITY}: 72% negative against a 21% baseline",
            )  # fmt: skip
            await alert_store.record(engine, [live])
            await cache.push([live])
            card = page.locator(f'article[data-dedup-key="{live.dedup_key}"]')
            await expect(card).to_be_visible(timeout=5000)
            await expect(cards.first).to_have_attribute("data-dedup-key", live.dedup_key)
            await expect(card).to_contain_text(live.summary)
            await expect(card).to_contain_text("3 evidence messages")
            await expect(card).to_contain_text("negative share")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=SCREENSHOTS / "feed.png", animations="disabled")

            await page.get_by_label("Minimum severity").select_option("high")
            await expect(cards).to_have_count(2)  # the low one is filtered out
            await page.get_by_label("Minimum severity").select_option("low")

            # Labelling, keys only: skip one, then negative, positive with fraud toggled,
            # and "prediction correct".
            await page.goto(f"{api.url}/ui/label")
            skipped = await shown_item(page)
            await page.keyboard.press("?")
            await expect(page.locator("#help")).to_be_visible()
            await page.keyboard.press("?")
            await expect(page.locator("#help")).to_be_hidden()
            await page.keyboard.press("j")
            first = await shown_item(page, f"web-{skipped}")
            await page.keyboard.press("1")
            second = await shown_item(page, f"web-{first}")
            await page.keyboard.press("r")
            fraud = page.locator('button[data-risk="fraud"]')
            pressed_before = await fraud.get_attribute("aria-pressed")
            await page.keyboard.press("f")
            await expect(fraud).not_to_have_attribute("aria-pressed", pressed_before or "")
            await page.keyboard.press("3")
            third = await shown_item(page, f"web-{second}")
            await page.keyboard.press("Enter")
            await shown_item(page, f"web-{third}")
            await expect(page.locator("#counter")).to_contain_text("labelled 3 this session")
            await page.keyboard.press("r")  # the chooser open, for the screenshot
            await page.screenshot(path=SCREENSHOTS / "label.png", animations="disabled")

            rows = await feedback_rows(engine, tenant.name, 3)
            assert set(rows) == {f"web-{first}", f"web-{second}", f"web-{third}"}

            def predicted(n: int) -> set[str]:
                return {"fraud"} if QUEUED[n][3] >= 0.5 else set()

            one, two, three = rows[f"web-{first}"], rows[f"web-{second}"], rows[f"web-{third}"]
            assert (one.sentiment, set(one.risks)) == ("negative", predicted(first))
            assert not one.prediction_correct
            assert (two.sentiment, set(two.risks)) == ("positive", predicted(second) ^ {"fraud"})
            assert not two.prediction_correct
            assert (three.sentiment, set(three.risks)) == (QUEUED[third][1], predicted(third))
            assert three.prediction_correct

            # The entity's charts, reached from an alert's entity link.
            await page.goto(f"{api.url}/ui/feed")
            await page.locator(f'article[data-dedup-key="{live.dedup_key}"] a.entity').click()
            await page.wait_for_url("**/ui/entity?source=news&entity=ACME*")
            charts = page.locator("#charts svg[role=img]")
            await expect(charts).to_have_count(3)
            assert await page.locator("#charts rect.bar-negative").count() >= 1
            assert await page.locator("#charts path.line").count() >= 1
            # Each chart marks the three alerts.
            await expect(page.locator("#charts g.marker")).to_have_count(9)
            await expect(page.locator("#alerts article.card")).to_have_count(3)
            await page.get_by_label("Bucket size").select_option("900")
            await expect(page).to_have_url(re.compile(r"bucket_s=900"))
            await expect(charts).to_have_count(3)

            await page.get_by_role("link", name="Models").click()
            await page.wait_for_url("**/ui/models")
            await expect(page.locator("#serving")).not_to_be_empty()
            await expect(page.locator("#models [role=alert]")).to_have_count(0)
            assert errors == []

            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url("**/ui/login")
            await page.goto(f"{api.url}/ui/models")
            await page.wait_for_url("**/ui/login?next=%2Fui%2Fmodels")
            assert all("401" in e for e in errors), errors
        finally:
            await browser.close()
            await cache.close()


def test_pages_are_served_with_a_strict_content_security_policy(api: ApiServer) -> None:
    with api.client() as client:
        for name in ("login", "feed", "entity", "label", "models"):
            response = client.get(f"/ui/{name}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert f'src="/ui/static/{name}.js"' in response.text
        assert client.get("/ui/static/chart.js").status_code == 200
        assert client.get("/").headers["location"] == "/ui/feed"
        assert "/ui/feed" not in client.get("/openapi.json").json()["paths"]
