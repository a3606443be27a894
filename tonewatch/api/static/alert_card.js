// One alert as a card: severity colour, kind, source, entity link, summary, figures, time.

import { ago, el, figure, humanise, when } from "/ui/static/app.js";

export function entityHref(source, entity) {
  return `/ui/entity?${new URLSearchParams({ source, entity })}`;
}

function windowText(alert) {
  const options = { hour: "2-digit", minute: "2-digit" };
  const start = new Date(alert.window_start).toLocaleTimeString(undefined, options);
  const end = new Date(alert.window_end).toLocaleTimeString(undefined, options);
  return start === end ? `at ${end}` : `window ${start}–${end}`;
}

export function alertCard(alert, { fresh = false, linkEntity = true } = {}) {
  const figures = Object.entries(alert.figures ?? {});
  const evidence = alert.evidence?.length ?? 0;
  return el(
    "article",
    {
      class: `card sev-${alert.severity}${fresh ? " fresh" : ""}`,
      "data-dedup-key": alert.dedup_key,
      "aria-label": `${alert.severity} ${humanise(alert.kind)} alert`,
    },
    el(
      "header",
      {},
      el("span", { class: "badge sev" }, alert.severity),
      el("span", { class: "kind" }, humanise(alert.kind)),
      el("span", { class: "badge" }, alert.source),
      alert.entity
        ? linkEntity
          ? el("a", { class: "entity", href: entityHref(alert.source, alert.entity) }, alert.entity)
          : el("span", { class: "entity" }, alert.entity)
        : null,
      el(
        "time",
        { datetime: alert.created_at, title: when(alert.created_at), "data-ago": "" },
        ago(alert.created_at),
      ),
    ),
    el("p", { class: "summary" }, alert.summary),
    figures.length
      ? el(
          "dl",
          { class: "figures" },
          figures.map(([name, value]) =>
            el("div", {}, el("dt", {}, humanise(name)), el("dd", {}, figure(name, value))),
          ),
        )
      : null,
    el(
      "footer",
      {},
      el("span", { class: "evidence" }, `${evidence} evidence message${evidence === 1 ? "" : "s"}`),
      el("span", {}, windowText(alert)),
      el("span", { class: "mono" }, `model ${alert.model_version}`),
    ),
  );
}

/** Keep the "3 minutes ago" texts current. */
export function refreshTimes(root = document) {
  for (const time of root.querySelectorAll("time[data-ago]")) {
    time.textContent = ago(time.getAttribute("datetime"));
  }
}
