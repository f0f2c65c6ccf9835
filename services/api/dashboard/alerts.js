// The alerts card; a fired alert opens onto what changed on the device just before it, ranked as its likely causes.

import { api, dev, q } from "./api.js";
import { badge, fill, fmtTime, h, list, num, state, table } from "./dom.js";
import { toggleDiff } from "./timeline.js";

export async function loadAlerts() {
  const d = state.device;
  try {
    const [page, rules] = await Promise.all([api(`/alerts?${q({ device: d, page_size: 50 })}`),
                                             api(`/rules?${q({ device: d })}`).catch(() => [])]);
    const selectors = new Map(list(rules).map((r) => [r.id, r.selector]));
    fill("alerts", d, table(["time", "rule", "metric", "state", "value", "message", ""], list(page.items).map((a) => [
      fmtTime(a.time), a.rule_name, a.metric, badge(a.state, a.state === "resolved" ? "ok" : "bad"),
      `${num(a.value, 2)} ${a.operator ?? ""} ${num(a.threshold, 2)}`, a.message ?? a.detail ?? "",
      a.state === "fired" ? h("button", { type: "button", class: "link causes-toggle",
                                          onclick: (ev) => toggleCauses(d, a, selectors.get(a.rule_id), ev.currentTarget) },
                              "causes") : "",
    ]), "no alerts"));
  } catch (e) {
    fill("alerts", d, h("p", { class: "error" }, `alerts: ${e.message}`));
  }
}

async function toggleCauses(d, alert, selector, button) {
  const row = button.closest("tr");
  const open = row.nextElementSibling;
  if (open && open.classList.contains("causes-row")) { open.remove(); button.textContent = "causes"; return; }
  button.textContent = "hide causes";
  const cell = h("td", { colspan: row.children.length }, "loading…");
  row.after(h("tr", { class: "causes-row" }, cell));
  try {
    const res = await api(`${dev(d)}/changes?${q({ before: alert.time, metric: alert.metric, selector, top: 6 })}`);
    const items = list(res.items).filter((c) => c.ref !== alert.event_id).slice(0, 5);  // not the alert itself
    cell.replaceChildren(items.length ? h("ol", { class: "causes" }, items.map((c) => {
      const li = h("li", { "data-kind": c.kind }, h("span", { class: "muted" }, fmtTime(c.time)), " ",
        badge(c.kind, c.risk === "HIGH" || c.risk === "CRITICAL" ? "bad" : null), " ", c.summary ?? "",
        h("span", { class: "muted" }, ` — ${list(c.reasons).join(", ")}`));
      if (c.kind === "config") {
        li.append(" ", h("button", { type: "button", class: "link diff-toggle",
                                     onclick: (ev) => showDiff(d, c, li, ev.currentTarget) }, "show diff"));
      }
      return li;
    })) : h("p", { class: "empty" }, `nothing changed in the ${Math.round(res.window_s / 60)} minutes before`));
  } catch (e) {
    cell.replaceChildren(h("p", { class: "error" }, `causes: ${e.message}`));
  }
}

/** The diff of a config change: its snapshot is the timeline's config change of that file at that moment. */
async function showDiff(d, change, li, button) {
  try {
    const end = new Date(new Date(change.time).getTime() + 1000).toISOString();
    const res = await api(`${dev(d)}/timeline?${q({ kind: "config_change", start: change.time, end })}`);
    const entry = list(res.items).find((e) => e.detail && e.detail.file_path === change.subject);
    if (!entry) throw new Error("this change is not stored yet");
    await toggleDiff(d, entry.detail.snapshot_id, li, button);
  } catch (e) {
    li.append(h("p", { class: "error" }, `diff: ${e.message}`));
  }
}
