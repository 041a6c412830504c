// The dashboard table of contract section 5, refreshed by `dashboard_data` pushes.

import { el } from "./dom.js";
import { clockTime, DASH, dateTime, fixed, isNumber, percent, ratio } from "./format.js";
import { t } from "./i18n.js";
import { pairLabel } from "./ratios.js";

export const MAX_DASHBOARD_ROWS = 200;

// Each reference column: the stored average (or extreme) and its % difference to the last.
const REFERENCES = [
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

export class DashboardTable {
  constructor({ tbody, status, onSelect }) {
    this.tbody = tbody;
    this.status = status;
    this.onSelect = onSelect;
    this.rows = [];
    this.meta = null;
    this.error = null;
    this.render();
  }

  update(message) {
    const data = Array.isArray(message.data) ? message.data : [];
    this.rows = data.slice(0, MAX_DASHBOARD_ROWS);
    this.meta = { timestamp: message.timestamp, ms: message.query_time_ms };
    this.error = null;
    this.render();
  }

  fail(message) {
    this.error = message.message ?? message.error ?? DASH;
    this.renderStatus();
  }

  renderStatus() {
    this.status.classList.toggle("error", this.error !== null);
    if (this.error !== null) {
      this.status.textContent = t("dashboard.error", { detail: this.error });
    } else if (this.meta) {
      const ms = isNumber(this.meta.ms) ? fixed(this.meta.ms, 1) : DASH;
      const time = clockTime(this.meta.timestamp);
      this.status.textContent = t("dashboard.updated", { time, ms });
    } else {
      this.status.textContent = "";
    }
  }

  render() {
    this.renderStatus();
    if (this.rows.length === 0) {
      this.tbody.replaceChildren(
        el("tr", { class: "empty" }, el("td", { colspan: "8", text: t("dashboard.empty") })),
      );
      return;
    }
    this.tbody.replaceChildren(...this.rows.map((row) => this.renderRow(row)));
  }

  renderRow(row) {
    const label = pairLabel(row);
    const when = Date.parse(row.ultimo_timestamp ?? "");
    const tr = el(
      "tr",
      {
        class: "clickable",
        tabindex: "0",
        dataset: { testid: "dashboard-row", pairId: String(row.pair_id ?? "") },
      },
      el(
        "th",
        { scope: "row", title: `${row.base ?? ""} / ${row.quote ?? ""}`, dataset: { col: "par" } },
        el("span", { class: "ticker", text: label.name }),
        ...label.extra.map((text) => el("span", { class: "term", text })),
      ),
      el("td", {
        class: "num strong",
        dataset: { col: "ultimo_ratio_operado" },
        title: Number.isNaN(when) ? null : dateTime(when / 1000),
        text: ratio(row.ultimo_ratio_operado),
      }),
      ...REFERENCES.map((ref) =>
        el(
          "td",
          { class: "num ref", dataset: { col: ref.value } },
          el("span", { class: "value", text: ratio(row[ref.value]) }),
          el("span", {
            class: difClass(row[ref.dif]),
            dataset: { col: ref.dif },
            text: percent(row[ref.dif]),
          }),
        ),
      ),
    );
    if (Number.isInteger(row.pair_id)) {
      const open = () => this.onSelect(row);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          open();
        }
      });
    }
    return tr;
  }

  relabel() {
    this.render();
  }
}
