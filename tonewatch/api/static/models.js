// The model versions in the Triton repository, their evaluation metrics, and which serves.

import { api, el, fail, humanise, session, when } from "/ui/static/app.js";

const table = document.getElementById("models");
const serving = document.getElementById("serving");
const rounds = document.getElementById("rounds");

const MEAN = "the mean macro F1 over the evaluation datasets that have these labels";
const HEADINGS = [
  ["Version"], ["Status"], ["Created"], ["Trained from"], ["Sentiment F1", MEAN], ["Risk F1", MEAN],
  ["Per dataset"], ["Report"],
];
const SHORT = {
  sentiment_macro_f1: "sentiment F1",
  sentiment_accuracy: "sentiment acc.",
  risk_macro_f1: "risk F1",
};

function metricCell(value) {
  if (typeof value !== "number") return el("span", { class: "muted" }, "–");
  const meter = el("i");
  meter.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  return el(
    "span",
    { class: "bar-cell" },
    el("span", { class: "meter", "aria-hidden": "true" }, meter),
    value.toFixed(3),
  );
}

function metrics(byDataset) {
  const datasets = Object.entries(byDataset ?? {});
  if (!datasets.length) return el("span", { class: "muted" }, "no metrics");
  const names = [...new Set(datasets.flatMap(([, figures]) => Object.keys(figures)))].slice(0, 3);
  const grid = el("div", { class: "metrics" });
  grid.style.gridTemplateColumns = `auto repeat(${names.length}, minmax(4.5rem, auto))`;
  grid.append(
    el("span", { class: "head" }, "dataset"),
    ...names.map((n) => el("span", { class: "head" }, SHORT[n] ?? humanise(n))),
  );
  for (const [dataset, figures] of datasets) {
    grid.append(el("span", {}, dataset), ...names.map((n) => metricCell(figures[n])));
  }
  return grid;
}

/** The mean of one metric over the datasets that report it, or null. */
function mean(byDataset, name) {
  const values = Object.values(byDataset ?? {})
    .map((figures) => figures[name])
    .filter((v) => typeof v === "number");
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

/** A link to a round's report (Markdown), or a dash. */
function reportLink(url) {
  return url
    ? el("a", { href: url, target: "_blank", rel: "noopener" }, "report")
    : el("span", { class: "muted" }, "–");
}

function row(version, servingVersion) {
  const isServing = version.serving ?? version.version === servingVersion;
  const datasets = Object.keys(version.metrics ?? {}).length;
  const details = datasets
    ? el(
        "details",
        { open: isServing },
        el("summary", {}, `${datasets} dataset${datasets === 1 ? "" : "s"}`),
        metrics(version.metrics),
      )
    : el("span", { class: "muted" }, "no metrics");
  return el(
    "tr",
    { class: isServing ? "serving" : null, "data-version": version.version },
    el("td", {}, el("strong", {}, `v${version.version}`)),
    el(
      "td",
      { title: version.reason ?? "" },
      isServing
        ? el("span", { class: "badge serving", title: "answering predictions now" }, "serving")
        : null,
      ` ${version.status}`,
    ),
    el("td", {}, when(version.created_at)),
    el("td", { class: "mono" }, version.source ?? "–"),
    el("td", {}, metricCell(mean(version.metrics, "sentiment_macro_f1"))),
    el("td", {}, metricCell(mean(version.metrics, "risk_macro_f1"))),
    el("td", {}, details),
    el("td", {}, reportLink(version.report)),
  );
}

/** Retrain rounds, newest first, with the gate's reasons and the report. */
function roundsTable(models) {
  if (!models.rounds?.length) {
    return el("p", { class: "empty" }, "No retrain round yet.");
  }
  return el(
    "table",
    {},
    el("caption", { class: "sr-only" }, "Retrain rounds, newest first"),
    el(
      "thead",
      {},
      el("tr", {}, ["Round", "Trigger", "Outcome", "Started", "Labels", "Why", "Report"].map(
        (h) => el("th", { scope: "col" }, h),
      )),
    ),
    el(
      "tbody",
      {},
      models.rounds.map((r) =>
        el(
          "tr",
          { "data-round": r.id },
          el("td", {}, `#${r.id}`),
          el("td", {}, r.trigger),
          el("td", {}, el("strong", {}, r.status)),
          el("td", {}, when(r.started_at)),
          el("td", {}, String(r.labels_used)),
          el("td", {}, r.error ?? (r.reasons.join("; ") || "–")),
          el("td", {}, reportLink(r.report)),
        ),
      ),
    ),
  );
}

async function main() {
  try {
    await session("models");
  } catch {
    return;
  }
  let models;
  try {
    models = await api("/v1/models");
  } catch (error) {
    fail(table, error);
    return;
  }
  serving.textContent = models.serving
    ? `serving v${models.serving}`
    : models.triton_reachable === false
      ? "Triton is not answering"
      : "no version is serving";
  rounds.replaceChildren(roundsTable(models));
  if (!models.versions.length) {
    table.replaceChildren(el("p", { class: "empty" }, "No model version in the repository yet."));
    return;
  }
  table.replaceChildren(
    el(
      "table",
      {},
      el("caption", { class: "sr-only" }, "Model versions, newest first"),
      el(
        "thead",
        {},
        el("tr", {}, HEADINGS.map(([h, title]) => el("th", { scope: "col", title }, h))),
      ),
      el("tbody", {}, models.versions.map((v) => row(v, models.serving))),
    ),
  );
}

main();
