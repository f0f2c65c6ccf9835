// Building elements and formatting values. Every text from data goes through textContent or setAttribute, never
// innerHTML. Also the page state, and the cards that are filled against it.

export const $ = (sel) => document.querySelector(sel);

export const state = { devices: [], device: null, range: "6h", stream: null, timers: {}, types: null };

/** An element with attributes and children; strings become text nodes, null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "polyline", "line", "text", "circle", "title", "g"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "never");
export const num = (v, digits = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–");
export const list = (v) => (Array.isArray(v) ? v : []);
export function bytes(v) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
export function badge(text, level) { return h("span", { class: `badge ${level || ""}` }, text ?? "unknown"); }
export const levelOf = (v, ok, bad) => (ok.includes(v) ? "ok" : bad.includes(v) ? "bad" : "warn");

export function table(headings, rows, empty = "none") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export function card(id, title, cls = "") {
  return h("section", { class: `card ${cls}`.trim(), id }, h("h3", {}, title), h("div", { class: "body" }, "loading…"));
}

export const body = (id) => document.getElementById(id)?.querySelector(".body");
/** Replace a card's body, unless the user has moved to another device meanwhile. */
export function fill(id, device, ...nodes) { if (device === state.device && body(id)) body(id).replaceChildren(...nodes); }
