// One entity over time: net sentiment, messages by sentiment and volume, with its alerts
// drawn as markers; data from GET /v1/entities/{entity}/timeline.

import { SOURCES, api, el, fail, humanise, params, session, when } from "/ui/static/app.js";
import { alertCard } from "/ui/static/alert_card.js";
import { timeChart } from "/ui/static/chart.js";

const MAX_BUCKETS = 2000; // the API's limit per request
const REFRESH_MS = 60000;

const form = document.getElementById("controls");
const charts = document.getElementById("charts");
const alertList = document.getElementById("alerts");
const title = document.getElementById("title");
let timer = null;

function fillControls() {
  const query = params();
  const source = form.elements.source;
  source.append(...SOURCES.map((s) => el("option", { value: s }, s)));
  if (SOURCES.includes(query.source)) source.value = query.source;
  form.elements.entity.value = query.entity ?? "";
  for (const name of ["bucket_s", "range_s"]) {
    const select = form.elements[name];
    if ([...select.options].some((o) => o.value === query[name])) select.value = query[name];
  }
}

/** The chosen bucket, made larger when the range would need too many. */
function bucketSeconds(rangeS) {
  const select = form.elements.bucket_s;
  const fitting = [...select.options].find(
    (o) => Number(o.value) >= Number(select.value) && rangeS / Number(o.value) <= MAX_BUCKETS,
  );
  if (fitting && fitting.value !== select.value) select.value = fitting.value;
  return Number(select.value);
}

function signed(v) {
  return `${v > 0 ? "+" : ""}${v.toFixed(2)}`;
}

function span(t, bucketMs) {
  const options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  const start = new Date(t).toLocaleString(undefined, options);
  const end = new Date(t + bucketMs).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return `${start}–${end}`;
}

function chartPanel(heading, chart, legend = null) {
  return el("section", { class: "panel chart" }, el("h2", {}, heading), chart, legend);
}

function draw(timeline, rangeS) {
  const bucketMs = timeline.bucket_s * 1000;
  const x1 = timeline.until ? Date.parse(timeline.until) : Date.now();
  const x0 = timeline.since ? Date.parse(timeline.since) : x1 - rangeS * 1000;
  const buckets = timeline.buckets.map((b) => ({ ...b, t: Date.parse(b.start) }));
  const byStart = new Map(buckets.map((b) => [b.t, b]));
  const markers = timeline.alerts.map((a) => ({
    t: Date.parse(a.window_end),
    severity: a.severity,
    text: `${a.severity} · ${humanise(a.kind)}\n${a.summary}\n${when(a.created_at)}`,
  }));
  const describe = (t) => {
    if (t < x0 - bucketMs || t > x1) return null;
    const b = byStart.get(t);
    if (!b) return `${span(t, bucketMs)}\nno messages`;
    return (
      `${span(t, bucketMs)}\nvolume ${b.volume} · net ${signed(b.net_sentiment)}\n` +
      `negative ${b.negative} · neutral ${b.neutral} · positive ${b.positive}`
    );
  };
  const common = { x0, x1, bucketMs, markers, describe };
  // Volume counts empty buckets as zero; sentiment has no value there (the line breaks).
  const volume = [];
  for (let t = Math.floor(x0 / bucketMs) * bucketMs; t < x1; t += bucketMs) {
    volume.push({ t, v: byStart.get(t)?.volume ?? 0 });
  }

  const total = buckets.reduce((sum, b) => sum + b.volume, 0);
  const net = total ? buckets.reduce((sum, b) => sum + b.net_sentiment * b.volume, 0) / total : null;
  const summary = el(
    "p",
    { class: "muted" },
    `${total.toLocaleString()} messages · mean net sentiment ${net === null ? "–" : signed(net)} · ` +
      `${timeline.alerts.length} alert${timeline.alerts.length === 1 ? "" : "s"}`,
  );
  charts.replaceChildren(
    summary,
    chartPanel(
      "Net sentiment (mean of P(positive) − P(negative))",
      timeChart({
        ...common,
        label: `Net sentiment of ${timeline.entity}`,
        yDomain: [-1, 1],
        yTicks: [-1, -0.5, 0, 0.5, 1],
        yFormat: signed,
        layers: [{ type: "line", points: buckets.map((b) => ({ t: b.t, v: b.net_sentiment })) }],
      }),
    ),
    chartPanel(
      "Messages by sentiment",
      timeChart({
        ...common,
        label: `Messages by sentiment of ${timeline.entity}`,
        layers: [
          {
            type: "stack",
            classes: ["bar-negative", "bar-neutral", "bar-positive"],
            points: buckets.map((b) => ({ t: b.t, values: [b.negative, b.neutral, b.positive] })),
          },
        ],
      }),
      el(
        "div",
        { class: "legend" },
        el("span", { class: "negative" }, "negative"),
        el("span", { class: "neutral" }, "neutral"),
        el("span", { class: "positive" }, "positive"),
      ),
    ),
    chartPanel(
      "Volume",
      timeChart({
        ...common,
        height: 140,
        label: `Volume of ${timeline.entity}`,
        layers: [{ type: "line", area: true, points: volume }],
      }),
    ),
  );
  const newest = [...timeline.alerts].sort((a, b) => b.created_at.localeCompare(a.created_at));
  alertList.replaceChildren(
    ...(newest.length
      ? newest.map((a) => alertCard(a, { linkEntity: false }))
      : [el("p", { class: "empty" }, "No alerts in this range.")]),
  );
}

async function load() {
  clearTimeout(timer);
  const source = form.elements.source.value;
  const entity = form.elements.entity.value.trim();
  if (!entity) return;
  const rangeS = Number(form.elements.range_s.value);
  const bucketS = bucketSeconds(rangeS);
  const query = new URLSearchParams({ source, entity, bucket_s: bucketS, range_s: rangeS });
  history.replaceState(null, "", `${location.pathname}?${query}`);
  title.textContent = `${entity} · ${source}`;
  document.title = `${entity} · tonewatch`;
  const since = new Date(Date.now() - rangeS * 1000).toISOString();
  const url =
    `/v1/entities/${encodeURIComponent(entity)}/timeline?` +
    new URLSearchParams({ source, bucket_s: bucketS, since });
  try {
    draw(await api(url), rangeS);
  } catch (error) {
    fail(charts, error);
    alertList.replaceChildren();
  }
  timer = setTimeout(load, REFRESH_MS);
}

async function main() {
  fillControls();
  try {
    await session("entity");
  } catch {
    return;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  for (const name of ["source", "bucket_s", "range_s"]) {
    form.elements[name].addEventListener("change", load);
  }
  await load();
}

main();
