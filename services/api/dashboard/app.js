// The infrawatch dashboard: plain DOM, no build step. Every text from data goes through textContent or
// setAttribute, never innerHTML; every API call sends the key as a header, never in a URL.

const KEY = "infrawatch.apiKey";
const RANGES = { "1h": [3600, "1m"], "6h": [6 * 3600, "5m"], "24h": [86400, "15m"], "7d": [7 * 86400, "1h"] };
const GENERIC_ROWS = 50;  // rows of a generic card's item table
const $ = (sel) => document.querySelector(sel);

const state = { devices: [], device: null, range: "6h", stream: null, timers: {}, types: null };

/** An element with attributes and children; strings become text nodes, null/false children are skipped. */
function h(tag, attrs = {}, ...children) {
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

const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "never");
const num = (v, digits = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–");
const list = (v) => (Array.isArray(v) ? v : []);
function bytes(v) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function badge(text, level) { return h("span", { class: `badge ${level || ""}` }, text ?? "unknown"); }
const levelOf = (v, ok, bad) => (ok.includes(v) ? "ok" : bad.includes(v) ? "bad" : "warn");

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || (typeof body.detail === "string" ? body.detail : null))) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

function headers() { return { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, Accept: "application/json" }; }

/** GET an API path; a 401 signs out. */
async function api(path, signal) {
  const r = await fetch(path, { headers: headers(), signal });
  const body = await r.json().catch(() => null);
  if (r.status === 401) { logout("The key was refused."); throw new ApiError(401, body); }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
const dev = (name) => `/devices/${encodeURIComponent(name)}`;

// ---- sign in / out -------------------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const key = $("#key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  $("#login-error").textContent = "";
  try {
    await api("/devices?page_size=1");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    showLogin(e.status === 401 ? "The key was refused." : `Sign-in failed: ${e.message}`);
    return;
  }
  $("#key").value = "";
  start();
}

function logout(message = "") {
  sessionStorage.removeItem(KEY);
  stopStream();
  Object.values(state.timers).forEach(clearInterval);
  state.timers = {};
  showLogin(message);
}

function showLogin(message) {
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#live").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#key").focus();
}

function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  loadDevices();
  state.timers.devices = setInterval(loadDevices, 30000);
  route();
}

// ---- device list ---------------------------------------------------------------------------------------------

function lastCollection(d) {
  const times = Object.values(d.last_successful_collection || {}).map((t) => new Date(t)).filter((t) => !isNaN(t));
  return times.length ? new Date(Math.max(...times)) : null;
}

function collectionHealth(d) {
  const bad = Object.entries(d.last_collection_status || {}).filter(([, s]) => s === "error");
  return bad.length ? badge(`${bad.length} failing`, "bad") : null;
}

async function loadDevices() {
  try {
    const page = await api("/devices?page_size=500");
    state.devices = list(page.items);
    renderDevices();
  } catch (e) {
    if (e.status !== 401) $("#devices").replaceChildren(h("li", { class: "error" }, `Devices: ${e.message}`));
  }
}

function renderDevices() {
  const filter = $("#filter").value.trim().toLowerCase();
  const items = state.devices.filter((d) => !filter || String(d.name).toLowerCase().includes(filter));
  $("#devices").replaceChildren(...(items.length ? items.map((d) => h("li", {},
    h("a", { href: `#/device/${encodeURIComponent(d.name)}`, class: d.name === state.device ? "current" : null,
             "data-device": d.name },
      h("span", { class: "name" }, d.name), " ",
      badge(d.status, d.status === "enabled" ? "ok" : null), " ", collectionHealth(d),
      h("small", {}, d.address ?? ""),
      h("small", { class: "last-collection" }, `last collection: ${fmtTime(lastCollection(d))}`)),
  )) : [h("li", { class: "empty" }, "no devices")]));
}

// ---- one device ----------------------------------------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/device\/(.+)$/);
  const name = m ? decodeURIComponent(m[1]) : null;
  if (name !== state.device || !$("#device-view")) openDevice(name);
}

function openDevice(name) {
  stopStream();
  state.device = name;
  renderDevices();
  if (!name) { $("#device").replaceChildren(h("p", { class: "muted" }, "Choose a device.")); return; }
  $("#device").replaceChildren(h("div", { id: "device-view" },
    h("h2", {}, name), h("p", { id: "device-info", class: "muted" }),
    h("section", { class: "card", id: "metrics" },
      h("h3", {}, "Metrics ", h("span", { class: "range" }, ...Object.keys(RANGES).map((r) =>
        h("button", { type: "button", "data-range": r, class: r === state.range ? "current" : null,
                      onclick: () => { state.range = r; loadMetrics(); } }, r)))),
      h("div", { class: "body" }, "loading…")),
    Object.entries(CUSTOM).map(([type, [title]]) => card(type, title)), h("div", { id: "generic" }),
    card("alerts", "Alerts"), card("timeline", "Configuration and events"),
  ));
  loadInfo();
  loadMetrics();
  Object.keys(CUSTOM).forEach((type) => loadData(type, `/data/${type}`));
  loadGeneric(name);
  loadAlerts();
  loadTimeline();
  startStream(name);
}

function card(id, title, cls = "") {
  return h("section", { class: `card ${cls}`.trim(), id }, h("h3", {}, title), h("div", { class: "body" }, "loading…"));
}

const body = (id) => document.getElementById(id)?.querySelector(".body");
/** Replace a card's body, unless the user has moved to another device meanwhile. */
function fill(id, device, ...nodes) { if (device === state.device && body(id)) body(id).replaceChildren(...nodes); }

async function loadInfo() {
  const d = state.device;
  try {
    const info = await api(dev(d));
    if (d !== state.device) return;
    $("#device-info").replaceChildren(badge(info.status, info.status === "enabled" ? "ok" : null), " ",
      `${info.username ? info.username + "@" : ""}${info.address}:${info.port} · ${info.transport}`,
      info.description ? ` · ${info.description}` : "", ` · last collection ${fmtTime(lastCollection(info))}`);
  } catch (e) {
    if (d === state.device) $("#device-info").replaceChildren(h("span", { class: "error" }, e.message));
  }
}

// ---- metrics charts ------------------------------------------------------------------------------------------

async function loadMetrics() {
  const d = state.device;
  const [span, bucket] = RANGES[state.range];
  document.querySelectorAll("#metrics .range button").forEach((b) =>
    b.classList.toggle("current", b.dataset.range === state.range));
  const end = new Date(Date.now() + 60000);
  const start = new Date(end - span * 1000);
  try {
    const res = await api(`${dev(d)}/metrics?${q({ start: start.toISOString(), end: end.toISOString(), bucket })}`);
    const rows = list(res.items);
    if (!rows.length) { fill("metrics", d, h("p", { class: "empty" }, `no data in the last ${state.range}`)); return; }
    const series = (avg, max) => rows.map((r) => ({ t: new Date(r.bucket).getTime(), v: r[avg], max: r[max] }))
      .filter((p) => typeof p.v === "number");
    fill("metrics", d, h("div", { class: "charts" },
      chart("cpu", "CPU", "%", series("cpu_avg", "cpu_max"), 100, start, end),
      chart("memory", "Memory", "%", series("memory_avg", "memory_max"), 100, start, end),
      chart("load", "Load (1 min)", "", series("load_1_avg", "load_1_max"), null, start, end)),
      h("p", { class: "muted" }, `average (line) and maximum (dashed) per ${bucket}`));
  } catch (e) {
    fill("metrics", d, h("p", { class: "error" }, `metrics: ${e.message}`));
  }
}

/** An SVG line chart of {t, v, max} points over [start, end]; ``top`` fixes the y scale (else from the data). */
function chart(id, title, unit, points, top, start, end) {
  const W = 320, H = 140, L = 30, R = 6, T = 8, B = 18;
  const ymax = top ?? Math.max(1, ...points.map((p) => p.max ?? p.v)) * 1.1;
  const x = (t) => L + ((t - start) / (end - start)) * (W - L - R);
  const y = (v) => T + (1 - Math.min(v, ymax) / ymax) * (H - T - B);
  const coords = (key) => points.filter((p) => typeof p[key] === "number")
    .map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const last = points[points.length - 1];
  const grid = [0, 0.5, 1].map((f) => [
    h("line", { class: "grid", x1: L, x2: W - R, y1: y(ymax * f), y2: y(ymax * f) }),
    h("text", { x: L - 4, y: y(ymax * f) + 3, "text-anchor": "end" }, num(ymax * f, ymax * f >= 10 ? 0 : 1)),
  ]);
  const fmt = (t) => (end - start > 86400000 ? new Date(t).toLocaleDateString() : "") + " " +
    new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return h("figure", { id: `chart-${id}` },
    h("figcaption", {}, h("span", {}, title),
      h("span", { class: "latest", "data-metric": id }, last ? `${num(last.v)}${unit}` : "–")),
    h("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-points": points.length },
      grid,
      h("polyline", { class: "max", points: coords("max") }),
      h("polyline", { class: "line", points: coords("v") }),
      points.length === 1 ? h("circle", { class: "dot", cx: x(last.t), cy: y(last.v), r: 3 }) : null,
      h("text", { x: L, y: H - 4 }, fmt(start)),
      h("text", { x: W - R, y: H - 4, "text-anchor": "end" }, fmt(end)),
      h("title", {}, `${title}: ${points.length} points, latest ${last ? num(last.v) + unit : "none"}`)));
}

// ---- collected data: custom cards, and a generic card per other registered type ---------------------------------

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
async function loadGeneric(d) {
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

async function loadData(type, path) {
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

function renderData(type, d, res) {
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

function table(headings, rows, empty = "none") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
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

function containers(p) {
  const rows = list(p.containers).map((c) => [
    c.name, c.image, badge(c.state, levelOf(c.state, ["running"], ["dead", "exited", "restarting"])),
    c.health ? badge(c.health, levelOf(c.health, ["healthy"], ["unhealthy"])) : "–", c.status ?? "",
    c.restart_count ?? "–", typeof c.cpu_percent === "number" ? `${num(c.cpu_percent)}%` : "–", bytes(c.memory_bytes),
  ]);
  return h("div", {}, p.runtime ? h("p", { class: "muted" }, `runtime: ${p.runtime}`) : null,
    table(["name", "image", "state", "health", "status", "restarts", "CPU", "memory"], rows, "no containers"),
    list(p.removed).length ? h("p", { class: "muted" }, `removed: ${list(p.removed).map((c) => c.name).join(", ")}`) : null);
}

function drives(p, d) {
  const health = (dr) => dr.failing ? badge("FAILING", "bad") : dr.healthy === true ? badge("PASSED", "ok")
    : dr.healthy === false ? badge("FAILED", "bad") : badge(dr.could_not_open ? "no SMART data" : "unknown", "warn");
  const rows = list(p.drives).map((dr) => [
    dr.name, [dr.model, dr.serial].filter(Boolean).join(" · ") || "–", health(dr),
    typeof dr.temperature_celsius === "number" ? `${dr.temperature_celsius} °C` : "–",
    tempHistory(d, dr.name), dr.power_on_hours ?? "–", bytes(dr.capacity_bytes), dr.error ?? "",
  ]);
  return table(["drive", "model / serial", "SMART", "temperature", "temperature, 24h", "power-on h", "size", "note"],
    rows, "no drives");
}

/** A cell that fills with the drive's stored temperature over the last 24 hours (average per bucket). */
function tempHistory(d, name) {
  const cell = h("span", { class: "temp-history", "data-drive": name }, "…");
  const [span, bucket] = RANGES["24h"];
  const end = new Date(Date.now() + 60000);
  const start = new Date(end - span * 1000);
  const drive = encodeURIComponent(String(name).replace(/^\/dev\//, ""));
  api(`${dev(d)}/drives/${drive}/history?${q({ start: start.toISOString(), end: end.toISOString(), bucket })}`)
    .then((res) => cell.replaceChildren(spark(list(res.items).filter((b) => typeof b.temperature_avg === "number")
      .map((b) => ({ t: new Date(b.bucket).getTime(), v: b.temperature_avg })))))
    .catch((e) => cell.replaceChildren(h("span", { class: "muted" }, e.status === 404 ? "none stored" : "–")));
  return cell;
}

/** A small SVG sparkline of {t, v} points. */
function spark(points) {
  if (points.length < 2) return h("span", { class: "muted" }, points.length ? "1 reading" : "–");
  const vs = points.map((p) => p.v), lo = Math.min(...vs), hi = Math.max(...vs) || 1, span = hi - lo || 1;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const pts = points.map((p) => `${(((p.t - t0) / (t1 - t0 || 1)) * 98 + 1).toFixed(1)},${(19 - ((p.v - lo) / span) * 18).toFixed(1)}`);
  return h("svg", { class: "chart spark", viewBox: "0 0 100 20", width: 100, height: 20, preserveAspectRatio: "none",
                    "data-points": points.length }, h("polyline", { class: "line", points: pts.join(" ") }),
    h("title", {}, `${num(lo)}–${num(hi)} °C over ${points.length} buckets`));
}

function zfs(p) {
  const pools = list(p.pools).map((pool) => [
    pool.name, badge(pool.health, levelOf(pool.health, ["ONLINE"], ["FAULTED", "UNAVAIL", "SUSPENDED", "REMOVED"])),
    typeof pool.capacity_percent === "number" ? `${pool.capacity_percent}%` : "–",
    `${bytes(pool.allocated_bytes)} / ${bytes(pool.size_bytes)}`,
    `${pool.read_errors ?? 0}/${pool.write_errors ?? 0}/${pool.checksum_errors ?? 0}`,
    pool.scrub_state ?? "–", pool.status ?? pool.errors ?? "",
  ]);
  const datasets = list(p.datasets).map((ds) => [ds.name, ds.mountpoint ?? "–", bytes(ds.used_bytes),
    bytes(ds.available_bytes)]);
  return h("div", {}, table(["pool", "health", "capacity", "allocated", "errors r/w/c", "scrub", "status"], pools, "no pools"),
    datasets.length ? h("details", {}, h("summary", {}, `${datasets.length} datasets`),
      table(["dataset", "mountpoint", "used", "available"], datasets)) : null);
}

function services(p) {
  const units = list(p.units);
  const failed = new Set(list(p.failed));
  const restarted = new Set(list(p.restarted));
  const row = (u) => [u.name, badge(u.active, levelOf(u.active, ["active"], ["failed"])), u.sub ?? "",
    u.restarts ?? "–", u.result ?? "", u.description ?? ""];
  const notable = units.filter((u) => failed.has(u.name) || restarted.has(u.name) || u.active === "failed");
  const heads = ["unit", "active", "sub", "restarts", "result", "description"];
  return h("div", {},
    h("p", {}, `${p.active ?? "?"} active of ${p.total ?? units.length} · `,
      badge(`${failed.size} failed`, failed.size ? "bad" : "ok"), " ",
      badge(`${restarted.size} restarted`, restarted.size ? "warn" : "ok")),
    table(heads, notable.map(row), "no failed or restarted units"),
    units.length ? h("details", {}, h("summary", {}, `all ${units.length} units`), table(heads, units.map(row))) : null);
}

/** The types with a card of their own: title and renderer. Every other registered type gets a generic card. */
const CUSTOM = {
  containers: ["Containers", containers], drive_health: ["Drives", drives], zfs: ["ZFS", zfs],
  systemd_services: ["Services", services],
};

// ---- alerts and timeline -------------------------------------------------------------------------------------

async function loadAlerts() {
  const d = state.device;
  try {
    const page = await api(`/alerts?${q({ device: d, page_size: 50 })}`);
    fill("alerts", d, table(["time", "rule", "metric", "state", "value", "message"], list(page.items).map((a) => [
      fmtTime(a.time), a.rule_name, a.metric, badge(a.state, a.state === "resolved" ? "ok" : "bad"),
      `${num(a.value, 2)} ${a.operator ?? ""} ${num(a.threshold, 2)}`, a.message ?? a.detail ?? "",
    ]), "no alerts"));
  } catch (e) {
    fill("alerts", d, h("p", { class: "error" }, `alerts: ${e.message}`));
  }
}

async function loadTimeline() {
  const d = state.device;
  try {
    const res = await api(`${dev(d)}/timeline?limit=100`);
    const items = list(res.items).slice().reverse();
    fill("timeline", d, items.length ? h("ol", { class: "timeline" }, items.map((e) => {
      const snap = e.kind === "config_change" && e.detail && e.detail.snapshot_id;
      const li = h("li", { "data-kind": e.kind }, h("span", { class: "muted" }, fmtTime(e.time)), " ",
        (e.detail && e.detail.status === "unsupported") ? badge("unsupported", null)
          : badge(e.kind.replace("_", " "), e.kind === "collection_failure" ? "bad" : null), " ", e.summary ?? "");
      if (snap) {
        li.append(" ", h("button", { type: "button", class: "link diff-toggle",
                                     onclick: (ev) => toggleDiff(d, snap, li, ev.currentTarget) }, "show diff"));
      }
      return li;
    })) : h("p", { class: "empty" }, "nothing in the last 7 days"));
  } catch (e) {
    fill("timeline", d, h("p", { class: "error" }, `timeline: ${e.message}`));
  }
}

async function toggleDiff(d, snapshot, li, button) {
  const open = li.querySelector(".diff-view");
  if (open) { open.remove(); button.textContent = "show diff"; return; }
  button.textContent = "hide diff";
  const view = h("div", { class: "diff-view" }, "loading…");
  li.append(view);
  try {
    const res = await api(`${dev(d)}/config/snapshots/${encodeURIComponent(snapshot)}/diff`);
    const lines = String(res.diff ?? "").split("\n").filter((l, i, all) => l || i < all.length - 1)
      .filter((l) => !l.startsWith("---") && !l.startsWith("+++"));
    const cls = (l) => (l.startsWith("@@") ? "hunk" : l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : null);
    view.replaceChildren(
      h("p", { class: "muted" }, `${res.file_path}: +${res.added_lines} −${res.removed_lines}`,
        res.from_snapshot ? "" : " (new file)", res.content_available ? "" : " (content not stored)"),
      lines.length ? h("pre", { class: "diff" }, lines.map((l) => h("span", { class: cls(l) }, l || " ")))
        : h("p", { class: "empty" }, "no textual change"));
  } catch (e) {
    view.replaceChildren(h("p", { class: "error" }, `diff: ${e.message}`));
  }
}

// ---- live updates: SSE read with fetch() so the key travels in a header -----------------------------------------

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

function setLive(text, level) {
  const el = $("#live");
  el.hidden = false;
  el.textContent = text;
  el.className = `badge ${level}`;
}

function startStream(device) {
  const ctrl = new AbortController();
  state.stream = ctrl;
  let delay = 1000;
  (async () => {
    while (!ctrl.signal.aborted) {
      try {
        const r = await fetch(`${dev(device)}/events`, { headers: { ...headers(), Accept: "text/event-stream" },
                                                         signal: ctrl.signal });
        if (r.status === 401) { logout("The key was refused."); return; }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        setLive("live", "ok");
        delay = 1000;
        await readEvents(r.body, (kind, data) => onEvent(device, kind, data));
      } catch (e) {
        if (ctrl.signal.aborted) return;
      }
      setLive("reconnecting", "warn");
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 30000);
    }
  })();
}

/** Parse a text/event-stream body, calling ``on(event, data)`` per message. */
async function readEvents(stream, on) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) on(event, data.join("\n"));
    }
  }
}

/** Run ``fn`` at most once per ``ms`` per key (bursts of events cause one reload). */
const pending = new Map();
function soon(key, fn, ms = 2000) {
  if (pending.has(key)) return;
  pending.set(key, setTimeout(() => { pending.delete(key); fn(); }, ms));
}

function onEvent(device, kind, raw) {
  if (device !== state.device) return;
  let ev;
  try { ev = JSON.parse(raw); } catch { return; }
  setLive(`live · ${new Date().toLocaleTimeString()}`, "ok");
  if (kind === "collected") {
    const type = String(ev.kind || "").replace(/^collected\./, "");
    if (type === "system_metrics") soon("metrics", loadMetrics);
    else if (body(type) && ev.payload) {
      renderData(type, device, { ...ev, source: "live" });
    }
    soon("info", () => { loadInfo(); loadDevices(); }, 5000);
  } else if (kind === "config") soon("timeline", loadTimeline);
  else if (kind === "alert") { soon("alerts", loadAlerts); soon("timeline", loadTimeline); }
  else if (kind === "device") soon("info", () => { loadInfo(); loadDevices(); });
}

// ---- wiring --------------------------------------------------------------------------------------------------

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", () => logout());
$("#filter").addEventListener("input", renderDevices);
window.addEventListener("hashchange", () => { if (sessionStorage.getItem(KEY)) route(); });
if (sessionStorage.getItem(KEY)) start(); else showLogin();
