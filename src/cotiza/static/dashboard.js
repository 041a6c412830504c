// The dashboard table of contract section 5, refreshed by `dashboard_data` pushes. Rows are
// updated in place (keyed by pair), so focus and selection survive every refresh.

import { el, setCell } from "./dom.js";
import { DASH, fixed, isNumber, isoInZone, percent, ratio, zonedClock, zonedDateTime } from "./format.js";
import { t } from "./i18n.js";
import { pairInfo, pairNodes, pairText, pairTitle } from "./pairs.js";
import { csvText, download, fileStamp, Sorter } from "./table.js";

export const MAX_DASHBOARD_ROWS = 200;

// Each reference column: the stored average (or extreme) and its % difference to the last.
export const REFERENCES = [
  { key: "session", value: "promedio_rueda", dif: "dif_rueda_pct" },
  { key: "prev_day", value: "promedio_dia_anterior", dif: "dif_dia_anterior_pct" },
  { key: "week", value: "promedio_1semana", dif: "dif_1semana_pct" },
  { key: "month", value: "promedio_1mes", dif: "dif_1mes_pct" },
  { key: "min", value: "minimo_mensual", dif: "dif_minimo_pct" },
  { key: "max", value: "maximo_mensual", dif: "dif_maximo_pct" },
];

function difClass(value) {
  if (!isNumber(value) || value === 0) return "dif";
  return value > 0 ? "dif pos" : "dif neg";
}

function rowKey(row) {
  return `${row.pair_id ?? `${row.par}|${row.client_id}`}`;
}

export class DashboardTable {
  constructor({ table, status, sortSelect, exportButton, onSelect, serverNow }) {
    this.table = table;
    this.tbody = table.tBodies[0];
    this.status = status;
    this.onSelect = onSelect;
    this.serverNow = serverNow;
    this.data = new Map(); // key -> row of §5
    this.trs = new Map(); // key -> { tr, head, last, refs }
    this.meta = null;
    this.error = null;
    this.sorter = new Sorter({ thead: table.tHead, select: sortSelect, onChange: () => this.arrange() });
    exportButton.addEventListener("click", () => this.exportCsv());
    this.render();
  }

  update(message) {
    const data = Array.isArray(message.data) ? message.data.slice(0, MAX_DASHBOARD_ROWS) : [];
    this.data = new Map(data.map((row) => [rowKey(row), row]));
    this.meta = { timestamp: message.timestamp, ms: message.query_time_ms };
    this.error = null;
    this.render();
  }

  fail() {
    // The server's text is English and technical; the page says it in its own language.
    this.error = true;
    this.renderStatus();
  }

  renderStatus() {
    this.status.classList.toggle("error", this.error !== null);
    if (this.error !== null) {
      this.status.textContent = t("dashboard.error");
    } else if (this.meta) {
      const ms = isNumber(this.meta.ms) ? fixed(this.meta.ms, 1) : DASH;
      this.status.textContent = t("dashboard.updated", { time: zonedClock(this.meta.timestamp), ms });
    } else {
      this.status.textContent = "";
    }
  }

  render() {
    this.renderStatus();
    for (const [key, entry] of this.trs) {
      if (this.data.has(key)) continue;
      entry.tr.remove();
      this.trs.delete(key);
    }
    for (const [key, row] of this.data) this.renderRow(key, row);
    const empty = this.tbody.querySelector("tr.empty");
    if (this.data.size === 0 && !empty) {
      this.tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "8", text: t("dashboard.empty") })));
    } else if (this.data.size > 0) {
      empty?.remove();
    }
    this.arrange();
  }

  createRow(key, row) {
    const head = el("th", { scope: "row", dataset: { col: "par" } });
    const last = el("td", { class: "num strong", dataset: { col: "ultimo_ratio_operado" } });
    const refs = REFERENCES.map((ref) => {
      const value = el("span", { class: "value" });
      const dif = el("span", { class: "dif", dataset: { col: ref.dif } });
      const td = el("td", { class: "num ref", dataset: { col: ref.value } }, value, dif);
      return { ref, td, value, dif };
    });
    const tr = el(
      "tr",
      { tabindex: "0", dataset: { testid: "dashboard-row", pairId: String(row.pair_id ?? "") } },
      head,
      last,
      ...refs.map((r) => r.td),
    );
    const entry = { tr, head, last, refs };
    if (Number.isInteger(row.pair_id)) {
      tr.classList.add("clickable");
      const open = () => this.onSelect(this.data.get(key), tr);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          open();
        }
      });
    }
    this.trs.set(key, entry);
    this.tbody.append(tr);
    return entry;
  }

  renderRow(key, row) {
    const entry = this.trs.get(key) ?? this.createRow(key, row);
    entry.head.replaceChildren(...pairNodes(row));
    entry.head.title = pairTitle(row);
    entry.tr.setAttribute("aria-label", t("ratios.open", { pair: pairText(row) }));
    const when = Date.parse(row.ultimo_timestamp ?? "");
    setCell(entry.last, ratio(row.ultimo_ratio_operado));
    entry.last.title = Number.isNaN(when) ? "" : zonedDateTime(when / 1000);
    entry.last.dataset.label = t("dashboard.col.last");
    for (const { ref, td, value, dif } of entry.refs) {
      setCell(value, ratio(row[ref.value]));
      setCell(dif, percent(row[ref.dif]));
      dif.className = difClass(row[ref.dif]);
      td.dataset.label = t(`dashboard.col.${ref.key}`);
    }
  }

  arrange() {
    const keys = this.sorter.apply([...this.data.keys()], (key, sortKey) => {
      const row = this.data.get(key);
      return sortKey === "par" ? pairText(row) : row[sortKey];
    });
    let previous = null;
    for (const key of keys) {
      const tr = this.trs.get(key).tr;
      const expected = previous ? previous.nextElementSibling : this.tbody.firstElementChild;
      if (expected !== tr) {
        if (previous) previous.after(tr);
        else this.tbody.prepend(tr);
      }
      previous = tr;
    }
    this.order = keys;
  }

  exportCsv() {
    const header = [t("dashboard.col.pair"), t("csv.base"), t("csv.quote"), t("dashboard.col.last"), t("csv.time")];
    for (const ref of REFERENCES) header.push(t(`dashboard.col.${ref.key}`), `${t(`dashboard.col.${ref.key}`)} %`);
    const rows = (this.order ?? []).map((key) => {
      const row = this.data.get(key);
      const info = pairInfo(row);
      const when = Date.parse(row.ultimo_timestamp ?? "");
      return [
        [info.name, info.kind ? info.legs : "", info.settlement].filter(Boolean).join(" "),
        row.base ?? "",
        row.quote ?? "",
        row.ultimo_ratio_operado ?? null,
        Number.isNaN(when) ? "" : isoInZone(when / 1000),
        ...REFERENCES.flatMap((ref) => [row[ref.value] ?? null, row[ref.dif] ?? null]),
      ];
    });
    const stamp = fileStamp(isoInZone(this.serverNow() / 1000));
    download(`cotiza-${t("csv.name.dashboard")}-${stamp}.csv`, csvText(header, rows));
  }

  relabel() {
    this.sorter.relabel();
    this.tbody.querySelector("tr.empty")?.remove();
    this.render();
  }
}
