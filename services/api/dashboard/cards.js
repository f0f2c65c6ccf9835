// The cards of their own: containers, drives, ZFS and services. Every other registered type gets a generic card.

import { api, dev, q } from "./api.js";
import { RANGES, spark } from "./charts.js";
import { badge, bytes, h, levelOf, list, num, table } from "./dom.js";

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
export const CUSTOM = {
  containers: ["Containers", containers], drive_health: ["Drives", drives], zfs: ["ZFS", zfs],
  systemd_services: ["Services", services],
};
