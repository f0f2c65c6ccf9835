// The infrawatch dashboard: plain DOM in native ES modules, no build step. This module signs in and out, lists the
// devices, opens one device's cards and keeps them current from its live events. Every text from data goes through
// textContent or setAttribute, never innerHTML; every API call sends the key as a header, never in a URL.

import { loadAlerts } from "./alerts.js";
import { KEY, api, dev, headers, whenRefused } from "./api.js";
import { CUSTOM } from "./cards.js";
import { RANGES, loadMetrics } from "./charts.js";
import { $, badge, body, card, fmtTime, h, list, state } from "./dom.js";
import { openFleet } from "./fleet.js";
import { loadData, loadGeneric, renderData } from "./generic.js";
import { loadTimeline } from "./timeline.js";

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
  if (location.hash === "#/fleet") { openDevice(null); openFleet(); return; }
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

whenRefused(logout);
$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", () => logout());
$("#filter").addEventListener("input", renderDevices);
window.addEventListener("hashchange", () => { if (sessionStorage.getItem(KEY)) route(); });
if (sessionStorage.getItem(KEY)) start(); else showLogin();
