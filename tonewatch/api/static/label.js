// The labelling page: one queued item at a time, judged from the keyboard.
// Verdicts are optimistic: the next item shows at once while the POST runs; a failed POST
// brings its item back to the front with an error toast.

import { RISKS, ApiError, api, ago, el, fail, humanise, session, toast } from "/ui/static/app.js";
import { entityHref } from "/ui/static/alert_card.js";

const BATCH = 10;
const MAX_BATCH = 50; // the API's limit
const PREFETCH_BELOW = 4; // fetch the next batch when this few items are left
const RISK_THRESHOLD = 0.5; // a risk the model predicts (as in the queue's own ranking)
const SENTIMENT_KEYS = { 1: "negative", 2: "neutral", 3: "positive" };
const RISK_KEYS = {
  f: "fraud", l: "legal_regulatory", d: "financial_distress", o: "service_outage",
  s: "product_safety", c: "churn", t: "toxicity",
};
const KEY_OF_RISK = Object.fromEntries(Object.entries(RISK_KEYS).map(([k, r]) => [r, k]));

const view = document.getElementById("item");
const counter = document.getElementById("counter");
const help = document.getElementById("help");
const helpButton = document.getElementById("help-button");

const queue = []; // items to show; queue[0] is on screen
const known = new Set(); // message ids queued, judged or skipped in this session
const skipped = new Set();
const inFlight = new Set();
let fetching = null;
let chooserOpen = false;
let chosen = new Set(); // risks the labeller says apply to queue[0]
const verdictTimes = [];
let startedAt = null;

function predictedRisks(item) {
  return new Set(RISKS.filter((r) => (item.prediction.risks[r] ?? 0) >= RISK_THRESHOLD));
}

function sameSet(a, b) {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** The next batch from the queue. Our own leases come back first, so ask for as many more
 * as we already hold; ids already seen are dropped. Returns how many items were new. */
function refill() {
  if (!fetching) {
    const held = queue.length + skipped.size + inFlight.size;
    const limit = Math.min(MAX_BATCH, held + BATCH);
    fetching = api(`/v1/labeling/queue?limit=${limit}`)
      .then((items) => {
        const fresh = items.filter((item) => !known.has(item.message_id));
        for (const item of fresh) {
          known.add(item.message_id);
          queue.push(item);
        }
        return fresh.length;
      })
      .finally(() => {
        fetching = null;
      });
  }
  return fetching;
}

function prefetch() {
  if (queue.length < PREFETCH_BELOW) {
    refill().catch((error) => toast(`Could not fetch more items: ${error.message}`, "error"));
  }
}

async function show() {
  chooserOpen = false;
  if (!queue.length) {
    delete view.dataset.messageId;
    view.replaceChildren(el("p", { class: "empty" }, "Loading the queue…"));
    try {
      await refill();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) fail(view, error);
      return;
    }
    if (!queue.length) {
      drawEmpty();
      return;
    }
  }
  chosen = predictedRisks(queue[0]);
  startedAt ??= Date.now();
  draw();
  prefetch();
}

function drawEmpty() {
  delete view.dataset.messageId;
  const again = el(
    "button",
    {
      type: "button",
      onclick: () => {
        for (const id of skipped) known.delete(id);
        skipped.clear();
        show();
      },
    },
    "Check again",
  );
  view.replaceChildren(
    el("p", { class: "empty" }, "Nothing left to review. New uncertain predictions show up here."),
    el("p", { class: "empty" }, again),
  );
}

function percent(p) {
  return `${Math.round(p * 100)}%`;
}

function keyButton(label, key, onclick, extra = {}) {
  return el("button", { type: "button", onclick, ...extra }, label, el("kbd", {}, key));
}

function draw() {
  const item = queue[0];
  view.dataset.messageId = item.message_id;
  const prediction = item.prediction;
  const scores = ["negative", "neutral", "positive"].map((s) => {
    const bar = el("i", { class: s, title: `${s} ${percent(prediction.scores[s] ?? 0)}` });
    bar.style.width = percent(prediction.scores[s] ?? 0);
    return bar;
  });
  const predicted = predictedRisks(item);
  const risks = chooserOpen
    ? el(
        "div",
        { class: "risks", role: "group", "aria-label": "Risks that apply" },
        RISKS.map((risk) =>
          el(
            "button",
            {
              type: "button",
              class: "risk",
              "aria-pressed": chosen.has(risk) ? "true" : "false",
              "data-risk": risk,
              onclick: () => toggleRisk(risk),
            },
            el("kbd", {}, KEY_OF_RISK[risk]),
            humanise(risk),
            el("span", { class: "p" }, percent(prediction.risks[risk] ?? 0)),
          ),
        ),
      )
    : el(
        "div",
        { class: "risks" },
        chosen.size
          ? [...chosen].map((risk) =>
              el("span", { class: "risk", "aria-pressed": "true" }, humanise(risk),
                 el("span", { class: "p" }, percent(prediction.risks[risk] ?? 0))),
            )
          : el("span", { class: "muted" }, "no risk"),
        sameSet(chosen, predicted) ? null : el("span", { class: "muted" }, "(changed)"),
      );
  view.replaceChildren(
    el(
      "div",
      { class: "meta" },
      el("span", { class: "badge" }, item.source),
      item.entity
        ? el("a", { href: entityHref(item.source, item.entity), tabindex: -1 }, item.entity)
        : null,
      el("span", {}, `· ${ago(item.ts)}`),
      el("span", { class: "mono" }, `· ${item.message_id}`),
      el("span", {}, `· ${queue.length - 1} more queued`),
    ),
    el("blockquote", { "data-testid": "text" }, item.text),
    el(
      "div",
      { class: "prediction" },
      el(
        "span",
        {},
        "Model: ",
        el("span", { class: `sentiment ${prediction.sentiment}` }, prediction.sentiment),
      ),
      el("span", { class: "scores", "aria-hidden": "true" }, scores),
      el("span", { class: "muted" }, `confidence ${percent(item.confidence)}`),
      el("span", { class: "muted mono" }, `model ${prediction.model_version}`),
    ),
    el(
      "div",
      {},
      el("div", { class: "muted" }, chooserOpen ? "Risks (toggle with the keys):" : "Risks:"),
      risks,
    ),
    el(
      "div",
      { class: "actions" },
      keyButton("Negative", "1", () => judge("negative")),
      keyButton("Neutral", "2", () => judge("neutral")),
      keyButton("Positive", "3", () => judge("positive")),
      keyButton(sameSet(chosen, predicted) ? "Prediction correct" : "Submit risks", "Enter", confirm, {
        class: "primary",
      }),
      keyButton(chooserOpen ? "Close risks" : "Risks", "r", toggleChooser, {
        "aria-expanded": chooserOpen ? "true" : "false",
      }),
      keyButton("Skip", "j", skip),
    ),
  );
}

function toggleChooser() {
  chooserOpen = !chooserOpen;
  draw();
}

function toggleRisk(risk) {
  if (chosen.has(risk)) chosen.delete(risk);
  else chosen.add(risk);
  draw();
}

/** "The prediction is right", or, with changed risks, the predicted sentiment and those. */
function confirm() {
  const item = queue[0];
  if (sameSet(chosen, predictedRisks(item))) send(item, { correct: true });
  else send(item, { sentiment: item.prediction.sentiment, risks: [...chosen] });
}

function judge(sentiment) {
  send(queue[0], { sentiment, risks: [...chosen] });
}

function skip() {
  const item = queue.shift();
  skipped.add(item.message_id);
  show();
}

function send(item, verdict) {
  queue.shift();
  inFlight.add(item.message_id);
  const at = Date.now();
  verdictTimes.push(at);
  updateCounter();
  show();
  api("/v1/feedback", {
    method: "POST",
    body: { message_id: item.message_id, source: item.source, ...verdict },
  })
    .catch((error) => {
      if (error instanceof ApiError && error.status === 401) return;
      verdictTimes.splice(verdictTimes.indexOf(at), 1);
      updateCounter();
      queue.unshift(item);
      show();
      toast(`Not saved (${error.message}); the item is back for another try.`, "error", 7000);
    })
    .finally(() => inFlight.delete(item.message_id));
}

function updateCounter() {
  const now = Date.now();
  const n = verdictTimes.length;
  const recent = verdictTimes.filter((t) => now - t <= 60000).length;
  // The pace over the last minute (or since the first item, when that is shorter).
  const seconds = Math.min(60, Math.max(10, (now - (startedAt ?? now)) / 1000));
  const rate = n ? Math.round((recent / seconds) * 60) : null;
  counter.textContent = `labelled ${n} this session · ${rate === null ? "–" : rate}/min`;
}

function toggleHelp(open = help.classList.contains("hidden")) {
  help.classList.toggle("hidden", !open);
  helpButton.setAttribute("aria-expanded", String(open));
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
  const key = event.key;
  let handled = true;
  if (key === "?") toggleHelp();
  else if (key === "Escape") {
    if (chooserOpen) toggleChooser();
    else toggleHelp(false);
  } else if (!queue.length || !view.querySelector("blockquote")) handled = false;
  else if (key in SENTIMENT_KEYS) judge(SENTIMENT_KEYS[key]);
  else if (key === "Enter" || key === " ") confirm();
  else if (key === "j" || key === "ArrowRight") skip();
  else if (key === "r") toggleChooser();
  else if (chooserOpen && key in RISK_KEYS) toggleRisk(RISK_KEYS[key]);
  else handled = false;
  if (handled) event.preventDefault();
}

async function main() {
  let me;
  try {
    me = await session("label");
  } catch {
    return;
  }
  if (!me.scopes.includes("label") && !me.scopes.includes("admin")) {
    view.replaceChildren(
      el("p", { class: "empty error", role: "alert" }, "This API key lacks the label scope."),
    );
    return;
  }
  helpButton.addEventListener("click", () => toggleHelp());
  document.addEventListener("keydown", onKey);
  setInterval(updateCounter, 5000);
  await show();
}

main();
