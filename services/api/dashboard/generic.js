// Collected data: loading a type's latest payload into its card, and the generic card for each registered type
// (GET /datatypes) without a card of its own.

import { api, dev } from "./api.js";
import { CUSTOM } from "./cards.js";
import { $, card, fill, fmtTime, h, list, state, table } from "./dom.js";

const GENERIC_ROWS = 50;  // rows of a generic card's item table

/** The registered data types (GET /datatypes), asked once per page. */
async function dataTypes() {
  if (!state.types) state.types = api("/datatypes").catch((e) => { state.types = null; throw e; });
  return state.types;
}

/** Whether an element outside the generic cards (a custom card, "alerts") has this id. */
function taken(id) {
  const el = document.getElementById(id);
  return Boolean(el && !el.closest("#generic"));
}

/** A generic card for each type the API serves a latest payload of and this page has no card for. */
export async function loadGeneric(d) {
  try {
    const types = (await dataTypes()).filter((t) => t.latest && !(t.name in CUSTOM) && !taken(t.name));
    if (d !== state.device || !$("#generic")) return;
    $("#generic").replaceChildren(...types.map((t) => {
      const el = card(t.name, t.name.replace(/_/g, " "), "generic");
      el.setAttribute("data-type", t.name);
      el.setAttribute("title", t.doc);
      return el;
    }));
    types.forEach((t) => loadData(t.name, `/${encodeURIComponent(t.path)}`));
  } catch (e) {
    if (d === state.device && $("#generic")) {
      $("#generic").replaceChildren(h("p", { class: "error" }, `data types: ${e.message}`));
    }
  }
}

export async function loadData(type, path) {
  const d = state.device;
  try {
    renderData(type, d, await api(`${dev(d)}${path}`));
  } catch (e) {
    const s = e.body && e.body.status;
    let text = `no data: ${e.message}`;
    if (s === "unsupported") text = "unsupported on this device";
    else if (e.status === 504) text = "no data (no collection arrived in time)";
    else if (e.status === 502) text = `no data: the collection failed${e.body.error ? ` (${e.body.error})` : ""}`;
    fill(type, d, h("p", { class: "empty" }, text));
  }
}

export function renderData(type, d, res) {
  const p = res && res.payload;
  const age = h("p", { class: "muted" }, `collected ${fmtTime(res.occurred_at)} (${res.source ?? "live"}, ${res.status})`,
    list(res.warnings).length ? ` · warnings: ${list(res.warnings).join("; ")}` : "");
  if (!p || typeof p !== "object") { fill(type, d, h("p", { class: "empty" }, "no data"), age); return; }
  const render = type in CUSTOM ? CUSTOM[type][1] : generic;
  try {
    fill(type, d, render(p, d), age);
  } catch (e) {  // a payload shape this page does not know yet
    fill(type, d, h("details", {}, h("summary", {}, "raw data"), h("pre", {}, JSON.stringify(p, null, 2))), age);
  }
}

const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
const text = (v) => (v === null || v === undefined ? "–" : String(v));

/** Any payload: its top-level scalar fields as key/value, its first list as a table of its items' scalar fields. */
function generic(p) {
  const fields = Object.entries(p).filter(([, v]) => isScalar(v));
  const listed = Object.entries(p).find(([, v]) => Array.isArray(v));
  let items = null;
  if (listed) {
    const [name, all] = listed;
    const rows = all.slice(0, GENERIC_ROWS).map((it) => (it && typeof it === "object" ? it : { [name]: it }));
    const heads = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => isScalar(r[k]))))];
    items = h("div", { class: "items", "data-field": name }, h("h4", {}, name),
      table(heads, rows.map((r) => heads.map((k) => text(r[k]))), `no ${name}`),
      all.length > GENERIC_ROWS ? h("p", { class: "muted" }, `first ${GENERIC_ROWS} of ${all.length}`) : null);
  }
  return h("div", {}, fields.length ? h("table", { class: "fields" }, h("tbody", {},
    fields.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, text(v)))))) : null, items);
}
