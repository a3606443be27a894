// Shared by every page: API calls with the session cookie, the nav bar, toasts, DOM helpers.
// Texts from the API (alert summaries, messages) are user content: they only ever go into
// the page as text nodes, never as HTML.

export const SEVERITIES = ["low", "medium", "high", "critical"];
export const SOURCES = ["news", "reviews", "chats"];
export const KINDS = ["message_risk", "negative_spike", "volume_spike", "sentiment_shift", "escalation"];
export const RISKS = [
  "fraud", "legal_regulatory", "financial_distress", "service_outage", "product_safety",
  "churn", "toxicity",
];

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** Send the visitor to the login page, to come back here afterwards. */
export function toLogin() {
  const next = location.pathname + location.search;
  location.replace(`/ui/login?next=${encodeURIComponent(next)}`);
}

/** fetch() on the JSON API with the session cookie; throws ApiError on a non-2xx answer.
 * A 401 (no key, or a revoked one) sends the visitor to the login page. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, "not signed in");
  }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try {
      const payload = await response.json();
      detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail);
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return null;
  return response.json();
}

/** Build an element: el("a", {href, class: "x", onclick}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** The same for SVG elements. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(node, attrs);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

/** Who is signed in (GET /v1/me); draws the nav bar. Redirects to the login page on 401. */
export async function session(current) {
  const me = await api("/v1/me");
  drawNav(current, me);
  return me;
}

function drawNav(current, me) {
  const links = [["feed", "Feed"], ["label", "Label"], ["models", "Models"]];
  const signOut = el("button", { type: "button", class: "link", onclick: signOutNow }, "Sign out");
  const nav = el(
    "nav",
    { class: "nav", "aria-label": "Main" },
    el("a", { class: "brand", href: "/ui/feed" }, "tone", el("span", {}, "watch")),
    el(
      "ul",
      {},
      links.map(([page, title]) =>
        el(
          "li",
          {},
          el("a", { href: `/ui/${page}`, "aria-current": page === current ? "page" : null }, title),
        ),
      ),
    ),
    el(
      "div",
      { class: "who" },
      el("span", { "data-testid": "who" }, el("strong", {}, me.name), " · ", me.tenant),
      signOut,
    ),
  );
  document.body.prepend(nav);
}

async function signOutNow() {
  try {
    await api("/v1/session", { method: "DELETE" });
  } finally {
    location.assign("/ui/login");
  }
}

/** A message in the corner for a few seconds. */
export function toast(message, kind = "info", ms = 5000) {
  let box = document.querySelector(".toasts");
  if (!box) {
    box = el("div", { class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = el("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

/** Show a failure where the page's content goes (e.g. a key without the needed scope). */
export function fail(container, error) {
  const text =
    error instanceof ApiError && error.status === 403
      ? `This API key may not do this: ${error.message}.`
      : `Could not load: ${error.message}`;
  container.replaceChildren(el("p", { class: "empty error", role: "alert" }, text));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** "3 minutes ago" */
export function ago(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [Infinity, "week"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return absolute.format(new Date(iso));
}

export function when(iso) {
  return absolute.format(new Date(iso));
}

/** Numbers as people read them: shares as %, small floats with 2 decimals. */
export function figure(name, value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  if (/share|ratio|rate|prob|^p_|confidence/.test(name) && Math.abs(value) <= 1) {
    return `${(value * 100).toFixed(1)}%`;
  }
  if (Number.isInteger(value)) return value.toLocaleString();
  return value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}

export function humanise(name) {
  return name.replaceAll("_", " ");
}

/** The page's query parameters as an object. */
export function params() {
  return Object.fromEntries(new URLSearchParams(location.search));
}
