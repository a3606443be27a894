// The live feed: history from GET /v1/alerts, then new alerts from the SSE stream.

import { KINDS, SEVERITIES, SOURCES, api, el, fail, humanise, session } from "/ui/static/app.js";
import { alertCard, refreshTimes } from "/ui/static/alert_card.js";

const MAX_ALERTS = 500;
const REOPEN_MS = 5000;

const list = document.getElementById("alerts");
const status = document.getElementById("status");
const filters = document.getElementById("filters");
const shown = document.getElementById("shown");

const alerts = new Map(); // dedup key -> alert
let unseen = 0;

function fillFilters() {
  const query = new URLSearchParams(location.search);
  const options = { source: SOURCES, kind: KINDS, min_severity: SEVERITIES };
  for (const [name, values] of Object.entries(options)) {
    const select = filters.elements[name];
    select.append(...values.map((v) => el("option", { value: v }, humanise(v))));
    const wanted = query.get(name);
    if (wanted && values.includes(wanted)) select.value = wanted;
  }
}

function currentFilter() {
  return {
    source: filters.elements.source.value,
    kind: filters.elements.kind.value,
    min_severity: filters.elements.min_severity.value || "low",
  };
}

function keeps(alert, f = currentFilter()) {
  return (
    (!f.source || alert.source === f.source) &&
    (!f.kind || alert.kind === f.kind) &&
    SEVERITIES.indexOf(alert.severity) >= SEVERITIES.indexOf(f.min_severity)
  );
}

function newestFirst() {
  return [...alerts.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
}

function render() {
  const f = currentFilter();
  const visible = newestFirst().filter((a) => keeps(a, f));
  list.replaceChildren(...visible.map((a) => alertCard(a)));
  if (!visible.length) {
    list.append(
      el(
        "p",
        { class: "empty" },
        alerts.size
          ? "No alert matches these filters."
          : "No alerts yet. New ones appear here as they happen.",
      ),
    );
  }
  shown.textContent = `${visible.length} of ${alerts.size} shown`;
}

function remember(alert) {
  if (alerts.has(alert.dedup_key)) return false;
  alerts.set(alert.dedup_key, alert);
  if (alerts.size > MAX_ALERTS) alerts.delete(newestFirst().at(-1).dedup_key);
  return true;
}

/** A live alert: a new card on top (when it passes the filters), briefly highlighted. */
function arrive(alert) {
  if (!remember(alert)) return;
  if (document.hidden) {
    unseen += 1;
    document.title = `(${unseen}) Live alerts · tonewatch`;
  }
  if (!keeps(alert)) {
    shown.textContent = `${list.querySelectorAll(".card").length} of ${alerts.size} shown`;
    return;
  }
  const card = alertCard(alert, { fresh: true });
  const later = [...list.querySelectorAll(".card")].find(
    (c) => alerts.get(c.dataset.dedupKey)?.created_at <= alert.created_at,
  );
  list.querySelector(".empty")?.remove();
  list.insertBefore(card, later ?? null);
  shown.textContent = `${list.querySelectorAll(".card").length} of ${alerts.size} shown`;
}

async function loadHistory() {
  const page = await api("/v1/alerts?limit=50");
  page.items.forEach(remember);
  render();
}

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

/** Open the stream. The browser itself reconnects after a dropped connection (sending
 * Last-Event-ID, so nothing is missed); after a refused one (e.g. a 503) it gives up, and
 * we open a new stream and fetch the history again to fill the gap. */
function connect() {
  setStatus("reconnecting", "connecting");
  const source = new EventSource("/v1/alerts/stream");
  const opened = new Promise((resolve) => source.addEventListener("open", resolve, { once: true }));
  source.addEventListener("open", () => setStatus("live", "live"));
  source.addEventListener("alert", (event) => arrive(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("offline", "offline, retrying");
      setTimeout(reopen, REOPEN_MS);
    } else {
      setStatus("reconnecting", "reconnecting");
    }
  });
  return opened;
}

async function reopen() {
  try {
    await api("/v1/me"); // a revoked key goes to the login page instead
  } catch {
    setTimeout(reopen, REOPEN_MS);
    return;
  }
  await connect();
  await loadHistory().catch(() => {});
}

async function main() {
  fillFilters();
  try {
    await session("feed");
  } catch {
    return;
  }
  filters.addEventListener("change", () => {
    const query = new URLSearchParams(
      Object.entries(currentFilter()).filter(([k, v]) => v && !(k === "min_severity" && v === "low")),
    );
    history.replaceState(null, "", `${location.pathname}${query.size ? `?${query}` : ""}`);
    render();
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  // The stream starts at the newest alert when it opens: open it first, then read the
  // history, so that an alert arriving in between is in one or the other (or both: deduped).
  await Promise.race([connect(), new Promise((resolve) => setTimeout(resolve, 3000))]);
  try {
    await loadHistory();
  } catch (error) {
    fail(list, error);
  }
  setInterval(() => refreshTimes(list), 30000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      unseen = 0;
      document.title = "Live alerts · tonewatch";
    }
  });
}

main();
