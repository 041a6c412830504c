// A pair's ratio history: preset and custom ranges, zoom and pan that fetch finer or wider
// data as needed, bid/ask/last lines beside the mid, bands over a stated window, live values
// appended while the view follows the present, and CSV/PNG export of what is on screen.

import {
  appendHistory,
  appendLive,
  bandWindowFor,
  emptySeries,
  gapLimit,
  pointCount,
  RANGES,
  resolutionFor,
  rollingBands,
  sessionStarts,
  typicalSpacing,
  viewRows,
} from "./chartdata.js";
import { loadUPlot, Plot } from "./chartplot.js";
import { byTestId, fetchJson } from "./dom.js";
import {
  DASH,
  inputValue,
  isNumber,
  isoInZone,
  parseInputValue,
  ratio,
  zonedDateTime,
  zoneLabel,
} from "./format.js";
import { t } from "./i18n.js";
import { pairText } from "./pairs.js";
import { csvText, download, fileStamp } from "./table.js";

const REFETCH_DELAY_MS = 350;
const DRAW_INTERVAL_MS = 250;

function spanText(seconds) {
  if (seconds % 86400 === 0) return t(seconds === 86400 ? "span.day" : "span.days", { n: seconds / 86400 });
  if (seconds % 3600 === 0) return `${seconds / 3600} ${t("unit.h")}`;
  if (seconds % 60 === 0) return `${seconds / 60} ${t("unit.min")}`;
  return `${seconds} ${t("unit.s")}`;
}

export class RatioChart {
  constructor({ panel, onClose, serverNow }) {
    this.panel = panel;
    this.onClose = onClose;
    this.serverNow = serverNow;
    this.title = byTestId("chart-title", panel);
    this.status = byTestId("chart-status", panel);
    this.host = byTestId("ratio-chart", panel);
    this.readout = byTestId("chart-readout", panel);
    this.tip = byTestId("chart-tip", panel);
    this.bandLegend = byTestId("chart-band-legend", panel);
    this.fromInput = byTestId("chart-from", panel);
    this.toInput = byTestId("chart-to", panel);
    this.plot = new Plot({
      host: this.host,
      onView: (from, to) => this.viewChanged(from, to),
      onCursor: (idx, left, top) => this.cursor(idx, left, top),
    });
    this.pair = null;
    this.range = "1d";
    this.view = null; // [from, to] on screen
    this.following = true;
    this.series = emptySeries(300);
    this.bands = { sma: [], upper: [], lower: [] };
    this.loaded = null; // { from, to, resolution, window }
    this.shown = { bid: false, ask: false, last: false, bands: true };
    this.loadSeq = 0;
    this.state = "idle";
    this.detail = "";
    this.refetchTimer = null;
    this.lastDraw = 0;
    this.drawTimer = null;
    this.opener = null;
    byTestId("chart-close", panel).addEventListener("click", () => this.close());
    byTestId("chart-reset", panel).addEventListener("click", () => this.setRange(this.range === "custom" ? "1d" : this.range));
    byTestId("chart-custom", panel).addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyCustom();
    });
    byTestId("chart-csv", panel).addEventListener("click", () => this.exportCsv());
    byTestId("chart-png", panel).addEventListener("click", () => this.exportPng());
    for (const button of panel.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => this.setRange(button.dataset.range));
    }
    for (const box of panel.querySelectorAll("[data-series-toggle]")) {
      box.addEventListener("change", () => {
        this.shown[box.dataset.seriesToggle] = box.checked;
        this.plot.setShown(this.shown);
      });
    }
  }

  get pairId() {
    return this.pair?.pair_id ?? null;
  }

  /** Open `item`'s chart; `opener` gets the focus back when the chart closes. */
  open(item, opener = null) {
    if (!item || !Number.isInteger(item.pair_id)) return;
    const { pair_id, par, base, quote, client_id } = item;
    this.pair = { pair_id, par, base, quote, client_id };
    this.opener = opener ?? document.activeElement;
    this.panel.hidden = false;
    this.relabel();
    this.setRange(this.range === "custom" ? "1d" : this.range);
    this.panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
    byTestId("chart-close", this.panel).focus({ preventScroll: true });
  }

  close() {
    if (this.pair === null) return;
    this.pair = null;
    this.loadSeq += 1;
    this.panel.hidden = true;
    this.plot.destroy();
    this.onClose();
    // Back to where the user was (the row that opened the chart), not the top of the page.
    if (this.opener?.isConnected) this.opener.focus();
    this.opener = null;
  }

  setRange(key) {
    if (!(key in RANGES)) return;
    this.range = key;
    this.following = true;
    this.markRange();
    const now = this.serverNow() / 1000;
    if (this.pair) this.load(now - RANGES[key].seconds, now);
  }

  markRange() {
    for (const button of this.panel.querySelectorAll("[data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === this.range));
    }
  }

  applyCustom() {
    const from = parseInputValue(this.fromInput.value);
    const to = parseInputValue(this.toInput.value);
    if (from === null || to === null || to <= from) {
      this.setStatus("error", t("chart.bad_range"));
      return;
    }
    this.range = "custom";
    this.following = false;
    this.markRange();
    this.load(from, to);
  }

  /** Fetch [from, to] (plus the bands' warm-up) at a resolution suited to its span. */
  async load(from, to) {
    const seq = ++this.loadSeq;
    const span = to - from;
    const resolution = resolutionFor(span);
    const window = bandWindowFor(span);
    const { base, quote, client_id } = this.pair;
    const params = new URLSearchParams({
      base,
      quote,
      client_id,
      resolution: String(resolution),
      from: String(from - window),
      to: String(this.following ? to + resolution : to),
      limit: "20000",
    });
    this.view = [from, to];
    this.host.dataset.pending = "true";
    this.setStatus("loading");
    let result;
    let uPlot;
    try {
      [result, uPlot] = await Promise.all([fetchJson(`/api/ratios/history?${params}`), loadUPlot()]);
    } catch {
      result = { ok: false, status: 0 };
    }
    if (seq !== this.loadSeq) return; // the user moved on while this was loading
    this.host.dataset.pending = "false";
    if (!result.ok) {
      this.setStatus("error", result.status ? t("chart.http_error", { status: result.status }) : t("error.network"));
      return;
    }
    this.uPlot = uPlot;
    const rows = Array.isArray(result.body?.data) ? result.body.data : [];
    this.series = emptySeries(resolution, Math.max(resolution, typicalSpacing(rows) ?? resolution));
    for (const row of rows) appendHistory(this.series, row);
    this.loaded = { from: from - window, to, resolution, window };
    this.setStatus(pointCount(this.series) ? "ready" : "empty");
    this.draw(true);
  }

  /** A live `ratio` push: appended while the view follows the present. */
  push(message) {
    if (this.pair === null || message.pair_id !== this.pair.pair_id || this.state === "loading") return;
    if (!this.loaded || !this.following) return;
    if (!appendLive(this.series, message)) return;
    if (this.state === "empty") this.setStatus("ready");
    const span = this.view[1] - this.view[0];
    const end = Math.max(this.view[1], message.asof);
    this.view = [end - span, end];
    this.loaded.to = end;
    this.scheduleDraw();
  }

  scheduleDraw() {
    if (this.drawTimer !== null) return;
    const wait = Math.max(0, DRAW_INTERVAL_MS - (performance.now() - this.lastDraw));
    this.drawTimer = setTimeout(() => {
      this.drawTimer = null;
      requestAnimationFrame(() => this.draw(false));
    }, wait);
  }

  draw(full) {
    if (this.pair === null || !this.uPlot) return;
    this.lastDraw = performance.now();
    const s = this.series;
    this.bands = rollingBands(s.t, s.mid, this.loaded.window);
    const data = [s.t, s.mid, s.bid, s.ask, s.last, this.bands.sma, this.bands.upper, this.bands.lower];
    const separators = sessionStarts(s);
    this.plot.setData(this.uPlot, data, this.view, this.shown, separators);
    const host = this.host.dataset;
    host.points = String(pointCount(s));
    host.lastT = String(s.t.findLast((_, i) => s.mid[i] !== null) ?? "");
    host.gaps = String(s.gaps);
    host.separators = String(separators.length);
    host.resolution = String(s.resolution);
    host.bandWindow = String(this.loaded.window);
    this.markView();
    if (full) this.renderLegend();
    if (this.state === "ready") this.renderStatus();
  }

  markView() {
    const [from, to] = this.view;
    this.host.dataset.viewFrom = String(from);
    this.host.dataset.viewTo = String(to);
    if (document.activeElement !== this.fromInput) this.fromInput.value = inputValue(from);
    if (document.activeElement !== this.toInput) this.toInput.value = inputValue(to);
  }

  /** The user zoomed or panned: follow the present only at the right edge; refetch if needed. */
  viewChanged(from, to) {
    if (!this.loaded) return;
    this.view = [from, to];
    const newest = this.series.t.at(-1) ?? to;
    this.following = to >= newest - this.series.resolution && this.range !== "custom";
    if (!this.following && this.range !== "custom") {
      this.range = "custom";
      this.markRange();
    }
    this.markView();
    const span = to - from;
    const needsDetail = resolutionFor(span) < this.loaded.resolution;
    const tooCoarse = resolutionFor(span) > this.loaded.resolution * 4;
    const outside = from < this.loaded.from + this.loaded.window || to > this.loaded.to + this.loaded.resolution;
    const bandWindow = bandWindowFor(span) !== this.loaded.window;
    if (!(needsDetail || tooCoarse || outside || bandWindow)) return;
    clearTimeout(this.refetchTimer);
    this.host.dataset.pending = "true";
    this.refetchTimer = setTimeout(() => {
      const [a, b] = this.view;
      this.load(a, b);
    }, REFETCH_DELAY_MS);
  }

  cursor(idx, left, top) {
    const s = this.series;
    if (idx === null || idx === undefined || left < 0 || s.t[idx] === undefined) {
      this.tip.hidden = true;
      this.readout.textContent = "";
      return;
    }
    const at = this.plot.u?.posToVal(left, "x");
    if (s.mid[idx] === null || (isNumber(at) && Math.abs(s.t[idx] - at) > gapLimit(s))) {
      // Inside a gap (outage, night, weekend): say so rather than show a neighbour's value.
      this.readout.textContent = `${zonedDateTime(isNumber(at) ? at : s.t[idx])} · ${t("chart.no_data")}`;
      this.tip.hidden = true;
      return;
    }
    const parts = [zonedDateTime(s.t[idx]), `${t("chart.legend.mid")} ${ratio(s.mid[idx])}`];
    for (const field of ["bid", "ask", "last"]) {
      if (this.shown[field] && isNumber(s[field][idx])) parts.push(`${t(`chart.legend.${field}`)} ${ratio(s[field][idx])}`);
    }
    if (this.shown.bands && isNumber(this.bands.lower[idx])) {
      parts.push(`${t("chart.legend.bands_short")} ${ratio(this.bands.lower[idx])} – ${ratio(this.bands.upper[idx])}`);
    }
    this.readout.textContent = parts.join(" · ");
    this.tip.replaceChildren(...parts.map((text) => Object.assign(document.createElement("div"), { textContent: text })));
    this.tip.hidden = false;
    const width = this.host.clientWidth;
    this.tip.style.left = `${Math.min(left + 12, width - 190)}px`;
    this.tip.style.top = `${Math.max(0, top - 10)}px`;
  }

  setStatus(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.panel.dataset.state = state;
    this.renderStatus();
  }

  renderStatus() {
    const status = this.status;
    status.classList.toggle("error", this.state === "error");
    if (this.state === "loading") status.textContent = t("chart.loading");
    else if (this.state === "empty") status.textContent = t("chart.empty");
    else if (this.state === "error") status.textContent = t("chart.error", { detail: this.detail });
    else {
      const s = this.series;
      const i = s.mid.findLastIndex((v) => v !== null);
      status.textContent = t("chart.points", {
        count: pointCount(s),
        resolution: spanText(Math.round(Math.max(s.resolution, s.spacing))),
        value: i >= 0 ? ratio(s.mid[i]) : DASH,
      });
    }
  }

  renderLegend() {
    const window = this.loaded ? spanText(this.loaded.window) : DASH;
    this.bandLegend.textContent = t("chart.legend.bands", { window });
    this.bandLegend.title = t("chart.legend.bands_tip", { window });
  }

  exportCsv() {
    if (!this.loaded) return;
    const [from, to] = this.view;
    const header = [t("csv.time"), "epoch", ...["mid", "bid", "ask", "last", "sma", "lower", "upper"].map((k) => t(`chart.legend.${k}`))];
    const rows = viewRows(this.series, this.bands, from, to);
    const name = pairText(this.pair).replaceAll(/[^\w]+/g, "-");
    download(`cotiza-${name}-${fileStamp(isoInZone(from))}.csv`, csvText(header, rows));
  }

  async exportPng() {
    if (!this.plot.u) return;
    const [from, to] = this.view;
    const legend = `${zonedDateTime(from)} – ${zonedDateTime(to)} · ${this.bandLegend.textContent}`;
    const blob = await this.plot.png(this.title.textContent, legend);
    const name = pairText(this.pair).replaceAll(/[^\w]+/g, "-");
    download(`cotiza-${name}-${fileStamp(isoInZone(from))}.png`, blob);
  }

  relabel() {
    if (this.pair === null) return;
    this.title.textContent = t("chart.title", { pair: pairText(this.pair) });
    byTestId("chart-zone", this.panel).textContent = t("chart.zone", { zone: zoneLabel() });
    this.markRange();
    this.renderStatus();
    this.renderLegend();
    if (this.uPlot && this.loaded) {
      this.plot.destroy(); // axis labels (month names, number format) follow the language
      this.draw(true);
    }
  }
}
