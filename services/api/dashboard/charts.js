// The metrics card's SVG charts, and the sparkline of a drive's temperature.

import { api, dev, q } from "./api.js";
import { fill, h, list, num, state } from "./dom.js";

export const RANGES = { "1h": [3600, "1m"], "6h": [6 * 3600, "5m"], "24h": [86400, "15m"], "7d": [7 * 86400, "1h"] };

export async function loadMetrics() {
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

/** A small SVG sparkline of {t, v} points. */
export function spark(points) {
  if (points.length < 2) return h("span", { class: "muted" }, points.length ? "1 reading" : "–");
  const vs = points.map((p) => p.v), lo = Math.min(...vs), hi = Math.max(...vs) || 1, span = hi - lo || 1;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const pts = points.map((p) => `${(((p.t - t0) / (t1 - t0 || 1)) * 98 + 1).toFixed(1)},${(19 - ((p.v - lo) / span) * 18).toFixed(1)}`);
  return h("svg", { class: "chart spark", viewBox: "0 0 100 20", width: 100, height: 20, preserveAspectRatio: "none",
                    "data-points": points.length }, h("polyline", { class: "line", points: pts.join(" ") }),
    h("title", {}, `${num(lo)}–${num(hi)} °C over ${points.length} buckets`));
}
