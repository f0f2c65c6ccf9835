// The fleet page: open config policy violations by severity (each with the diff that introduced it), a search of
// the fleet's parsed configuration files by JSONPath, and the paths whose content differs between devices.

import { api, q } from "./api.js";
import { $, badge, body, fmtTime, h, list, table } from "./dom.js";
import { toggleDiff } from "./timeline.js";

const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const LEVEL = { critical: "bad", high: "bad", medium: "warn" };
const blank = (v) => (v && v.trim() ? v.trim() : null);

/** Show the fleet page in the main pane. */
export function openFleet() {
  $("#device").replaceChildren(h("div", { id: "fleet-view" },
    h("h2", {}, "Fleet"),
    h("section", { class: "card", id: "fleet-violations" },
      h("h3", {}, "Open policy violations ", h("span", { class: "counts" }), " ",
        h("button", { type: "button", class: "link", onclick: loadViolations }, "reload")),
      h("div", { class: "body" }, "loading…")),
    h("section", { class: "card", id: "fleet-search" }, h("h3", {}, "Search configuration"),
      h("form", { class: "fleet-form", onsubmit: search },
        h("input", { name: "jsonpath", type: "search", size: 48, "aria-label": "JSONPath",
                     placeholder: "JSONPath, e.g. $.services.* ? (@.privileged == true)" }),
        typeSelect("config_type", "config type"),
        h("input", { name: "path", type: "search", placeholder: "path glob, e.g. /etc/nginx/*", "aria-label": "path glob" }),
        h("button", { type: "submit" }, "Search")),
      h("div", { class: "body" })),
    h("section", { class: "card", id: "fleet-drift" }, h("h3", {}, "Drift between devices"),
      h("form", { class: "fleet-form", onsubmit: (ev) => { ev.preventDefault(); loadDrift(); } },
        typeSelect("type", "config type"), h("button", { type: "submit" }, "Show")),
      h("div", { class: "body" }, "loading…")),
  ));
  loadViolations();
  loadTypes();
  loadDrift();
}

/** Put nodes in a card's body, unless the page has been left meanwhile. */
function put(id, ...nodes) {
  const el = body(id);
  if (el) el.replaceChildren(...nodes);
}

function typeSelect(name, label) {
  return h("select", { name, "aria-label": label, class: "config-types" }, h("option", { value: "" }, "any type"));
}

/** The config types the policies name (the default pack names every parsed type) fill the selects. */
async function loadTypes() {
  try {
    const types = [...new Set(list(await api("/config/policies")).map((p) => p.config_type))].sort();
    document.querySelectorAll("#fleet-view select.config-types").forEach((sel) => {
      const chosen = sel.value;
      sel.replaceChildren(h("option", { value: "" }, "any type"),
        ...types.map((t) => h("option", { value: t, selected: t === chosen ? "" : null }, t)));
    });
  } catch (e) {
    // the selects keep "any type"
  }
}

const shown = (m) => (typeof m === "string" ? m : JSON.stringify(m));
function matches(items, count) {
  const values = list(items).map(shown);
  const more = count > values.length ? ` (+${count - values.length} more)` : "";
  return h("span", { class: "matches" }, values.join(", ") + more);
}

/** A button that opens the diff of a stored version in a row below its own. */
function diffButton(deviceId, snapshotId) {
  return h("button", { type: "button", class: "link diff-toggle", onclick: (ev) => {
    const button = ev.currentTarget;
    const row = button.closest("tr");
    const open = row.nextElementSibling;
    if (open && open.classList.contains("diff-row")) { open.remove(); button.textContent = "show diff"; return; }
    const cell = h("td", { colspan: row.children.length });
    row.after(h("tr", { class: "diff-row" }, cell));
    toggleDiff(deviceId, snapshotId, cell, button);
  } }, "show diff");
}

// ---- violations ----------------------------------------------------------------------------------------------

async function loadViolations() {
  try {
    const res = await api(`/config/violations?${q({ state: "open", page_size: 500 })}`);
    const counts = res.by_severity || {};
    const head = $("#fleet-violations .counts");
    if (head) {
      head.replaceChildren(...SEVERITIES.filter((s) => counts[s]).map((s) =>
        h("span", { "data-severity": s }, badge(`${counts[s]} ${s}`, LEVEL[s]), " ")));
    }
    const items = list(res.items);
    const groups = SEVERITIES.map((s) => [s, items.filter((v) => v.severity === s)]).filter(([, vs]) => vs.length);
    put("fleet-violations", ...(groups.length ? groups.map(([s, vs]) => h("div", { class: "severity", "data-severity": s },
      h("h4", {}, badge(s, LEVEL[s]), ` ${vs.length}`),
      table(["device", "path", "policy", "message", "matching values", "opened", ""], vs.map((v) => [
        v.device ?? v.device_id, h("code", {}, v.path), v.policy, v.message, matches(v.matches, v.match_count),
        fmtTime(v.opened_at), v.introduced_by ? diffButton(v.device_id, v.introduced_by.snapshot_id) : "",
      ])))) : [h("p", { class: "empty" }, "no open violations")]),
      res.total_count > items.length ? h("p", { class: "muted" }, `${items.length} of ${res.total_count} shown`) : "");
  } catch (e) {
    put("fleet-violations", h("p", { class: "error" }, `violations: ${e.message}`));
  }
}

// ---- search --------------------------------------------------------------------------------------------------

async function search(ev) {
  ev.preventDefault();
  const field = (name) => blank(ev.currentTarget.elements.namedItem(name).value);
  const params = { jsonpath: field("jsonpath"), config_type: field("config_type"), path: field("path"), page_size: 100 };
  put("fleet-search", "searching…");
  try {
    const res = await api(`/config/search?${q(params)}`);
    const items = list(res.items);
    put("fleet-search", h("p", { class: "muted" }, `${res.total_count}${res.total_capped ? "+" : ""} files`),
      table(["device", "type", "path", "matching values", "version", ""], items.map((f) => [
        f.device ?? f.device_id, f.config_type, h("code", {}, f.path), matches(f.matches, f.match_count),
        fmtTime(f.time), diffButton(f.device_id, f.snapshot_id),
      ]), "no file matches"));
  } catch (e) {
    put("fleet-search", h("p", { class: "error" }, e.message));
  }
}

// ---- drift ---------------------------------------------------------------------------------------------------

async function loadDrift() {
  const sel = $("#fleet-drift select");
  try {
    const res = await api(`/config/drift?${q({ type: blank(sel ? sel.value : ""), page_size: 50 })}`);
    const items = list(res.items).slice().sort((a, b) => Number(b.drifted) - Number(a.drifted));
    put("fleet-drift", items.length ? h("ul", { class: "drift" }, items.map((p) => h("li", {
      "data-drifted": String(Boolean(p.drifted)) },
      h("code", {}, p.path), " ", badge(p.drifted ? `${list(p.groups).length} versions` : "same everywhere",
                                        p.drifted ? "warn" : "ok"),
      h("span", { class: "muted" }, ` ${p.config_type} · ${p.devices_total} devices`),
      p.drifted ? h("ul", { class: "groups" }, list(p.groups).map((g) => h("li", {},
        h("code", { title: g.content_hash }, String(g.content_hash).slice(0, 12)), " ",
        list(g.devices).map((d) => d.name ?? d.id).join(", ")))) : ""))) : h("p", { class: "empty" }, "no files"));
  } catch (e) {
    put("fleet-drift", h("p", { class: "error" }, `drift: ${e.message}`));
  }
}
