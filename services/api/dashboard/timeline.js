// The timeline card: configuration changes and events, each configuration change with its diff on demand.

import { api, dev } from "./api.js";
import { badge, fill, fmtTime, h, list, state } from "./dom.js";

export async function loadTimeline() {
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

export async function toggleDiff(d, snapshot, li, button) {
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
