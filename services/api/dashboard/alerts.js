// The alerts card.

import { api, q } from "./api.js";
import { badge, fill, fmtTime, h, list, num, state, table } from "./dom.js";

export async function loadAlerts() {
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
