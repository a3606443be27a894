// A small SVG chart over time: lines (broken at gaps), stacked bars, vertical markers with
// tooltips, and a hover read-out per bucket. No dependencies; styled by app.css classes.

import { el, svg } from "/ui/static/app.js";

const WIDTH = 960;
const MARGIN = { top: 10, right: 14, bottom: 26, left: 46 };

let tooltip = null;
let charts = 0; // for unique clip-path ids

function showTip(text, event) {
  if (!tooltip) {
    tooltip = el("div", { class: "tooltip hidden", role: "tooltip" });
    document.body.append(tooltip);
  }
  tooltip.textContent = text;
  tooltip.classList.remove("hidden");
  const x = Math.min(event.clientX + 14, window.innerWidth - tooltip.offsetWidth - 8);
  const y = Math.max(event.clientY - tooltip.offsetHeight - 10, 8);
  tooltip.style.left = `${x}px`;
  tooltip.style.top = `${y}px`;
}

function hideTip() {
  tooltip?.classList.add("hidden");
}

/** Tick values from 0 (or min) to max with a round step, about `count` of them. */
export function niceTicks(min, max, count = 4) {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Number(v.toFixed(10)));
  }
  return ticks;
}

function timeTicks(x0, x1, count = 6) {
  const steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400].map(
    (s) => s * 1000,
  );
  const step = steps.find((s) => (x1 - x0) / s <= count) ?? steps.at(-1);
  // Whole steps in local time (an hour tick lands on :00 where the zone allows).
  const offset = new Date(x0).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((x0 - offset) / step) * step + offset; t <= x1; t += step) ticks.push(t);
  return ticks;
}

function timeLabel(t, spanMs) {
  const date = new Date(t);
  if (spanMs <= 36 * 3600 * 1000) {
    return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/**
 * An SVG chart of values over [x0, x1] (epoch ms).
 *
 * options:
 *   label: the chart's accessible name
 *   x0, x1, bucketMs: the time range and the bucket size
 *   height: the height in viewBox units (the width is 960 and scales to the container)
 *   yDomain: [min, max], or omitted for 0..the largest value
 *   yFormat: value -> tick text
 *   layers: [{type: "line", points: [{t, v}], area?: bool}
 *            | {type: "stack", points: [{t, values: [...]}], classes: [...]}]
 *   markers: [{t, severity, text}] vertical lines with a tooltip
 *   describe: bucket start (ms) -> tooltip text for the hovered bucket, or null
 */
export function timeChart(options) {
  const { label, x0, x1, bucketMs, height = 180, layers = [], markers = [], describe } = options;
  const yFormat = options.yFormat ?? ((v) => v.toLocaleString());
  const inner = { w: WIDTH - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
  const [yMin, yMax] = options.yDomain ?? [0, Math.max(1, ...layers.flatMap(layerMax))];
  const x = (t) => MARGIN.left + ((t - x0) / (x1 - x0)) * inner.w;
  const y = (v) => MARGIN.top + inner.h - ((v - yMin) / (yMax - yMin)) * inner.h;

  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": label,
  });
  root.append(svg("title", {}, label));

  const yTicks = options.yTicks ?? niceTicks(yMin, yMax);
  const grid = svg("g", { class: "grid" });
  const axis = svg("g", { class: "axis" });
  for (const v of yTicks) {
    grid.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(v), y2: y(v) }));
    axis.append(svg("text", { x: MARGIN.left - 6, y: y(v) + 4, "text-anchor": "end" }, yFormat(v)));
  }
  for (const t of timeTicks(x0, x1)) {
    const bottom = MARGIN.top + inner.h;
    axis.append(svg("line", { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4 }));
    axis.append(
      svg("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, timeLabel(t, x1 - x0)),
    );
  }
  axis.append(
    svg("line", {
      x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: MARGIN.top + inner.h, y2: MARGIN.top + inner.h,
    }),
  );
  root.append(grid, axis);
  if (yMin < 0 && yMax > 0) {
    root.append(
      svg("line", { class: "zero", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0) }),
    );
  }

  // Buckets are aligned to the epoch, so the first and last may stick out of the range.
  const clip = `chart-clip-${(charts += 1)}`;
  root.append(
    svg("defs", {}, svg("clipPath", { id: clip },
      svg("rect", { x: MARGIN.left, y: 0, width: inner.w, height: height }))),
  );
  const plot = svg("g", { "clip-path": `url(#${clip})` });
  const barWidth = Math.max(1, (bucketMs / (x1 - x0)) * inner.w - 1);
  for (const layer of layers) {
    if (layer.type === "stack") plot.append(stack(layer, x, y, barWidth));
    else plot.append(line(layer, x, y, bucketMs, yMin));
  }
  root.append(plot);

  root.append(hoverLayer({ x0, x1, bucketMs, inner, x, describe, root }));
  root.append(markerLayer(markers, x, x0, x1, inner));
  return root;
}

function layerMax(layer) {
  if (layer.type === "stack") return layer.points.map((p) => p.values.reduce((a, b) => a + b, 0));
  return layer.points.map((p) => p.v);
}

function stack(layer, x, y, barWidth) {
  const group = svg("g", { class: "bars" });
  for (const point of layer.points) {
    let base = 0;
    point.values.forEach((value, i) => {
      if (value <= 0) return;
      group.append(
        svg("rect", {
          class: layer.classes[i],
          x: x(point.t) + 0.5,
          y: y(base + value),
          width: barWidth,
          height: Math.max(0, y(base) - y(base + value)),
        }),
      );
      base += value;
    });
  }
  return group;
}

function line(layer, x, y, bucketMs, yMin) {
  const group = svg("g", {});
  // Consecutive buckets form one run; an empty bucket breaks the line.
  const runs = [];
  for (const p of layer.points) {
    const last = runs.at(-1);
    if (last && p.t - last.at(-1).t <= bucketMs) last.push(p);
    else runs.push([p]);
  }
  const mid = bucketMs / 2;
  for (const run of runs) {
    const path = run
      .map((p, i) => `${i ? "L" : "M"}${x(p.t + mid).toFixed(1)},${y(p.v).toFixed(1)}`)
      .join("");
    if (layer.area && run.length > 1) {
      const base = y(Math.max(yMin, 0)).toFixed(1);
      const first = x(run[0].t + mid).toFixed(1);
      const last = x(run.at(-1).t + mid).toFixed(1);
      group.append(svg("path", { class: "area", d: `${path}L${last},${base}L${first},${base}Z` }));
    }
    if (run.length > 1) group.append(svg("path", { class: "line", d: path }));
    else group.append(svg("circle", { class: "dot", cx: x(run[0].t + mid), cy: y(run[0].v), r: 3 }));
  }
  return group;
}

function markerLayer(markers, x, x0, x1, inner) {
  const group = svg("g", { class: "markers" });
  for (const marker of markers) {
    const t = Math.min(Math.max(marker.t, x0), x1);
    const at = x(t);
    const g = svg("g", {
      class: `marker sev-${marker.severity}`,
      tabindex: 0,
      "aria-label": marker.text,
    });
    g.append(
      svg("title", {}, marker.text),
      svg("line", { x1: at, x2: at, y1: MARGIN.top, y2: MARGIN.top + inner.h }),
      svg("circle", { cx: at, cy: MARGIN.top + 3, r: 4 }),
      svg("rect", { x: at - 6, y: MARGIN.top, width: 12, height: inner.h }),
    );
    g.addEventListener("mousemove", (e) => {
      e.stopPropagation();
      showTip(marker.text, e);
    });
    g.addEventListener("mouseleave", hideTip);
    group.append(g);
  }
  return group;
}

function hoverLayer({ x0, x1, bucketMs, inner, x, describe, root }) {
  const group = svg("g", { class: "hover" });
  const guide = svg("line", { y1: MARGIN.top, y2: MARGIN.top + inner.h, class: "hidden" });
  const area = svg("rect", {
    x: MARGIN.left, y: MARGIN.top, width: inner.w, height: inner.h, fill: "transparent",
  });
  group.append(guide, area);
  if (!describe) return group;
  area.addEventListener("mousemove", (event) => {
    const box = root.getBoundingClientRect();
    const vx = ((event.clientX - box.left) / box.width) * WIDTH;
    const t = x0 + ((vx - MARGIN.left) / inner.w) * (x1 - x0);
    const bucket = Math.floor(t / bucketMs) * bucketMs;
    const text = describe(bucket);
    if (text === null) {
      guide.classList.add("hidden");
      hideTip();
      return;
    }
    const at = x(bucket + bucketMs / 2);
    guide.setAttribute("x1", at);
    guide.setAttribute("x2", at);
    guide.classList.remove("hidden");
    showTip(text, event);
  });
  area.addEventListener("mouseleave", () => {
    guide.classList.add("hidden");
    hideTip();
  });
  return group;
}
