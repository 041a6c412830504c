// A pair's ratio history drawn as SVG: the mid ratio, its 180-sample mean and the ±1.5σ
// bands, loaded from /api/ratios/history and extended by live `ratio` pushes.

import { byTestId, fetchJson } from "./dom.js";
import { axisTime, clockTime, dateTime, DASH, isNumber, ratio } from "./format.js";
import { t } from "./i18n.js";
import { pairLabel } from "./ratios.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** The chart never holds more points than this, however long the page stays open. */
export const MAX_CHART_POINTS = 2000;

// Each range asks the server for about 300 buckets; `step` also spaces live points.
export const RANGES = {
  "1h": { seconds: 3600, resolution: "10s", step: 10 },
  "1d": { seconds: 86400, resolution: "5m", step: 300 },
  "1w": { seconds: 7 * 86400, resolution: "30m", step: 1800 },
  "1m": { seconds: 30 * 86400, resolution: "2h", step: 7200 },
};

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function toPoint(row, live = false) {
  const mid = isNumber(row.mid_ratio) ? row.mid_ratio : row.last_ratio;
  return {
    t: row.asof,
    mid: isNumber(mid) ? mid : null,
    upper: isNumber(row.band_upper) ? row.band_upper : null,
    lower: isNumber(row.band_lower) ? row.band_lower : null,
    sma: isNumber(row.sma180_mid) ? row.sma180_mid : null,
    live,
  };
}

/** Round tick values ("nice numbers") covering [low, high] with about `count` steps. */
export function niceTicks(low, high, count = 5) {
  const span = high - low;
  if (!(span > 0)) return [low];
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

/** An SVG path through (x, y) pairs, broken where y is null. */
function linePath(points, x, y, field) {
  let d = "";
  let pen = false;
  for (const p of points) {
    const value = p[field];
    if (value === null) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(value).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** The filled area between the bands, one closed shape per run of points that have both. */
function bandPath(points, x, y) {
  let d = "";
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      const at = (p, value) => `${x(p.t).toFixed(1)},${y(value).toFixed(1)}`;
      const top = run.map((p, i) => `${i ? "L" : "M"}${at(p, p.upper)}`);
      const bottom = run
        .slice()
        .reverse()
        .map((p) => `L${at(p, p.lower)}`);
      d += `${top.join("")}${bottom.join("")}Z`;
    }
    run = [];
  };
  for (const p of points) {
    if (p.upper !== null && p.lower !== null) run.push(p);
    else flush();
  }
  flush();
  return d;
}

export class RatioChart {
  constructor({ panel, onClose }) {
    this.panel = panel;
    this.onClose = onClose;
    this.title = byTestId("chart-title", panel);
    this.status = byTestId("chart-status", panel);
    this.host = byTestId("ratio-chart", panel);
    this.readout = byTestId("chart-readout", panel);
    this.pair = null;
    this.range = "1d";
    this.points = [];
    this.anchor = null; // time of the last appended live point
    this.loadSeq = 0;
    this.state = "idle";
    this.detail = "";
    this.drawScheduled = false;
    this.layout = null;
    byTestId("chart-close", panel).addEventListener("click", () => this.close());
    for (const button of panel.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => this.setRange(button.dataset.range));
    }
    new ResizeObserver(() => this.scheduleDraw()).observe(this.host);
    this.host.addEventListener("pointermove", (event) => this.hover(event));
    this.host.addEventListener("pointerleave", () => this.hover(null));
  }

  get pairId() {
    return this.pair?.pair_id ?? null;
  }

  open(item) {
    if (!item || !Number.isInteger(item.pair_id)) return;
    const { pair_id, par, base, quote, client_id } = item;
    this.pair = { pair_id, par, base, quote, client_id };
    this.panel.hidden = false;
    this.relabel();
    this.load();
    this.panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  close() {
    this.pair = null;
    this.points = [];
    this.loadSeq += 1;
    this.panel.hidden = true;
    this.onClose();
  }

  setRange(key) {
    if (!(key in RANGES)) return;
    this.range = key;
    this.markRange();
    if (this.pair) this.load();
  }

  markRange() {
    for (const button of this.panel.querySelectorAll("[data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === this.range));
    }
  }

  async load() {
    const seq = ++this.loadSeq;
    const range = RANGES[this.range];
    const { base, quote, client_id } = this.pair;
    const params = new URLSearchParams({
      base,
      quote,
      client_id,
      resolution: range.resolution,
      from: String(Date.now() / 1000 - range.seconds),
    });
    this.setStatus("loading");
    let result;
    try {
      result = await fetchJson(`/api/ratios/history?${params}`);
    } catch {
      result = { ok: false, body: { detail: t("error.network") } };
    }
    if (seq !== this.loadSeq) return; // the user moved on while this was loading
    if (!result.ok) {
      this.points = [];
      this.setStatus("error", result.body?.detail ?? String(result.status));
      this.scheduleDraw();
      return;
    }
    const rows = Array.isArray(result.body?.data) ? result.body.data : [];
    this.points = rows.slice(-MAX_CHART_POINTS).map((row) => toPoint(row));
    this.anchor = null;
    this.setStatus(this.points.length ? "ready" : "empty");
    this.scheduleDraw();
  }

  /** Append a live ratio push; within one step the newest point is replaced, not added. */
  push(message) {
    if (this.pair === null || message.pair_id !== this.pair.pair_id || this.state === "loading") {
      return;
    }
    const point = toPoint(message, true);
    if (point.mid === null || !isNumber(point.t)) return;
    const range = RANGES[this.range];
    const last = this.points.at(-1);
    if (last && point.t <= last.t && !last.live) return; // older than the stored history
    if (last?.live && this.anchor !== null && point.t - this.anchor < range.step) {
      this.points[this.points.length - 1] = point;
    } else {
      this.points.push(point);
      this.anchor = point.t;
    }
    const horizon = point.t - range.seconds;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].t < horizon) drop += 1;
    drop = Math.max(drop, this.points.length - MAX_CHART_POINTS);
    if (drop > 0) this.points.splice(0, drop);
    if (this.state === "empty") this.setStatus("ready");
    this.scheduleDraw();
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
      const last = this.points.at(-1);
      status.textContent = t("chart.points", {
        count: this.points.length,
        value: last ? ratio(last.mid) : DASH,
      });
    }
  }

  relabel() {
    if (this.pair === null) return;
    const label = pairLabel(this.pair);
    const name = [label.name, ...label.extra].join(" · ");
    this.title.textContent = t("chart.title", { pair: name });
    this.markRange();
    this.renderStatus();
    this.scheduleDraw();
  }

  scheduleDraw() {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      this.draw();
    });
  }

  draw() {
    if (this.pair === null || this.panel.hidden) return;
    if (this.state === "ready") this.renderStatus();
    const width = Math.max(280, Math.floor(this.host.clientWidth));
    const height = width < 600 ? 220 : 300;
    const margin = { left: 8, right: 76, top: 12, bottom: 26 };
    const points = this.points.filter((p) => p.mid !== null || p.upper !== null);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width: String(width),
      height: String(height),
      role: "img",
      "aria-label": this.title.textContent,
      "data-testid": "chart-svg",
      "data-points": String(points.filter((p) => p.mid !== null).length),
      "data-last-t": String(points.at(-1)?.t ?? ""),
    });
    if (points.length === 0) {
      this.host.replaceChildren(root);
      this.layout = null;
      return;
    }
    let t0 = points[0].t;
    let t1 = points.at(-1).t;
    if (t1 <= t0) [t0, t1] = [t0 - 1, t1 + 1];
    const values = points
      .flatMap((p) => [p.mid, p.upper, p.lower, p.sma])
      .filter((v) => v !== null);
    let low = Math.min(...values);
    let high = Math.max(...values);
    const pad = (high - low) * 0.06 || Math.abs(high) * 0.001 || 1;
    low -= pad;
    high += pad;
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const right = margin.left + plotW;
    const x = (time) => margin.left + ((time - t0) / (t1 - t0)) * plotW;
    const y = (value) => margin.top + (1 - (value - low) / (high - low)) * plotH;

    const grid = svg("g", { class: "grid" });
    for (const tick of niceTicks(low, high, 5)) {
      grid.append(svg("line", { x1: margin.left, x2: right, y1: y(tick), y2: y(tick) }));
      const label = svg("text", { x: right + 6, y: y(tick) + 4, class: "axis" });
      label.textContent = ratio(tick);
      grid.append(label);
    }
    const span = t1 - t0;
    for (let i = 0; i <= 4; i += 1) {
      const time = t0 + (span * i) / 4;
      const label = svg("text", {
        x: x(time),
        y: height - 8,
        class: "axis",
        "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle",
      });
      label.textContent = axisTime(time, span);
      grid.append(label);
    }
    root.append(grid);
    const series = (name, cls, d) => svg("path", { d, class: cls, "data-series": name });
    root.append(
      series("bands", "band-area", bandPath(points, x, y)),
      series("band_upper", "band", linePath(points, x, y, "upper")),
      series("band_lower", "band", linePath(points, x, y, "lower")),
      series("sma", "sma", linePath(points, x, y, "sma")),
      series("mid", "mid", linePath(points, x, y, "mid")),
    );
    const last = points.findLast((p) => p.mid !== null);
    if (last) {
      // The latest value, as a dot on the line and a tag on the axis.
      const tagY = Math.min(Math.max(y(last.mid), margin.top + 8), margin.top + plotH - 8);
      const tag = svg("text", { x: right + 6, y: tagY + 4, class: "last-label" });
      tag.textContent = ratio(last.mid);
      root.append(
        svg("circle", { cx: x(last.t), cy: y(last.mid), r: 3.5, class: "last-dot" }),
        svg("rect", {
          x: right + 2,
          y: tagY - 9,
          width: margin.right - 4,
          height: 18,
          rx: 3,
          class: "last-tag",
        }),
        tag,
      );
    }
    this.cursor = svg("line", {
      class: "cursor",
      y1: margin.top,
      y2: margin.top + plotH,
      visibility: "hidden",
    });
    root.append(this.cursor);
    this.layout = { x, t0, t1, margin, plotW, points };
    this.host.replaceChildren(root);
  }

  hover(event) {
    const layout = this.layout;
    if (!event || !layout || !this.cursor) {
      this.cursor?.setAttribute("visibility", "hidden");
      this.readout.textContent = "";
      return;
    }
    const box = this.host.getBoundingClientRect();
    const fraction = (event.clientX - box.left - layout.margin.left) / layout.plotW;
    const time = layout.t0 + Math.min(1, Math.max(0, fraction)) * (layout.t1 - layout.t0);
    let best = layout.points[0];
    for (const p of layout.points) if (Math.abs(p.t - time) < Math.abs(best.t - time)) best = p;
    const at = layout.x(best.t);
    this.cursor.setAttribute("x1", at);
    this.cursor.setAttribute("x2", at);
    this.cursor.setAttribute("visibility", "visible");
    const when = layout.t1 - layout.t0 > 86400 ? dateTime(best.t) : clockTime(best.t);
    const bands = `[${ratio(best.lower)} – ${ratio(best.upper)}]`;
    this.readout.textContent = `${when} · ${ratio(best.mid)} ${bands}`;
  }
}
