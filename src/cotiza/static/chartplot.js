// The drawing surface of the ratio chart, on uPlot (vendored, loaded on first use): time
// axis in the market's zone with round ticks and dates across midnight, gaps left open,
// session separators, bands, a crosshair with a readout, and zoom/pan by wheel, drag and
// pinch (tap shows the crosshair on a phone).

import { marketZone, ratio } from "./format.js";
import { locale } from "./i18n.js";

const UPLOT_SRC = "/static/vendor/uPlot.iife.min.js";
const MIN_SPAN_S = 120;
let loading = null;

/** Load uPlot once, on the first chart opened: the page does not pay for it before. */
export function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = UPLOT_SRC;
    script.onload = () => resolve(window.uPlot);
    script.onerror = () => {
      loading = null;
      reject(new Error("chart library did not load"));
    };
    document.head.append(script);
  });
  return loading;
}

/** Month and weekday names in the page's language, for uPlot's date templates. */
function dateNames() {
  const month = (style) =>
    Array.from({ length: 12 }, (_, m) =>
      new Intl.DateTimeFormat(locale(), { month: style, timeZone: "UTC" }).format(Date.UTC(2020, m, 15)),
    );
  const day = (style) =>
    Array.from({ length: 7 }, (_, d) =>
      new Intl.DateTimeFormat(locale(), { weekday: style, timeZone: "UTC" }).format(Date.UTC(2020, 1, 2 + d)),
    );
  return { MMMM: month("long"), MMM: month("short"), WWWW: day("long"), WWW: day("short") };
}

// Tick labels by tick spacing: [spacing, label, label on a new year, _, on a new day, ...].
// Day/month order and a 24-hour clock, as read in Argentina; a new date is written under
// the first tick of each day, so midnight is never ambiguous.
const DAY = 86400;
const HOUR = 3600;
const TIME_AXIS = [
  [365 * DAY, "{YYYY}", null, null, null, null, null, null, 1],
  [28 * DAY, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
  [DAY, "{D}/{M}", "\n{YYYY}", null, null, null, null, null, 1],
  [HOUR, "{HH}:{mm}", "\n{D}/{M}/{YY}", null, "\n{D}/{M}", null, null, null, 1],
  [60, "{HH}:{mm}", "\n{D}/{M}/{YY}", null, "\n{D}/{M}", null, null, null, 1],
  [1, "{HH}:{mm}:{ss}", "\n{D}/{M}/{YY}", null, "\n{D}/{M}", null, null, null, 1],
];

function cssColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** Series slots in uPlot's data: 0 is time. */
export const SLOT = { mid: 1, bid: 2, ask: 3, last: 4, sma: 5, upper: 6, lower: 7 };

export class Plot {
  constructor({ host, onView, onCursor }) {
    this.host = host;
    this.onView = onView;
    this.onCursor = onCursor;
    this.u = null;
    this.separators = [];
    this.pointers = new Map();
    this.gesture = null;
    new ResizeObserver(() => this.resize()).observe(host);
  }

  height() {
    return this.host.clientWidth < 600 ? 240 : 320;
  }

  build(uPlot, data, shown) {
    this.u?.destroy();
    const text = cssColour("--muted");
    const grid = cssColour("--border");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const line = (label, colour, width, dash, show = true) => ({ label, stroke: colour, width, dash, show, spanGaps: false, points: { show: false } });
    const opts = {
      width: Math.max(280, this.host.clientWidth),
      height: this.height(),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), marketZone()),
      fmtDate: (template) => uPlot.fmtDate(template, dateNames()),
      legend: { show: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 7 }, y: true },
      scales: { x: { time: true }, y: { auto: true } },
      axes: [
        { ...axis, values: TIME_AXIS, space: 70 },
        { ...axis, side: 1, size: 78, values: (u, splits) => splits.map((v) => ratio(v)) },
      ],
      series: [
        {},
        line("mid", cssColour("--text"), 1.6),
        line("bid", cssColour("--up"), 1, undefined, shown.bid),
        line("ask", cssColour("--down"), 1, undefined, shown.ask),
        line("last", cssColour("--warn"), 1, [2, 2], shown.last),
        line("sma", text, 1, [1, 3], shown.bands),
        line("upper", cssColour("--accent"), 1, [4, 3], shown.bands),
        line("lower", cssColour("--accent"), 1, [4, 3], shown.bands),
      ],
      bands: [{ series: [SLOT.upper, SLOT.lower], fill: cssColour("--band") }],
      hooks: {
        draw: [(u) => this.drawSeparators(u)],
        // The time axis's labels, as drawn, for tests and for the chart's accessible name.
        drawAxes: [(u) => (this.host.dataset.xTicks = (u.axes[0]._values ?? []).join("|"))],
        setCursor: [(u) => this.onCursor(u.cursor.idx, u.cursor.left, u.cursor.top)],
        setScale: [(u, key) => key === "x" && this.scaled(u)],
      },
    };
    this.u = new uPlot(opts, data, this.host);
    this.bindGestures(this.u.over);
    this.host.dataset.ready = "true";
  }

  /** Replace the data; keeps the x range given as [from, to]. */
  setData(uPlot, data, view, shown, separators) {
    this.separators = separators;
    if (!this.u) this.build(uPlot, data, shown);
    else this.u.setData(data, false);
    this.setShown(shown);
    this.setView(view[0], view[1]);
  }

  setShown(shown) {
    if (!this.u) return;
    this.host.dataset.shown = Object.keys(shown).filter((name) => shown[name]).join(" ");
    const want = { bid: shown.bid, ask: shown.ask, last: shown.last, sma: shown.bands, upper: shown.bands, lower: shown.bands };
    for (const [name, show] of Object.entries(want)) {
      if (this.u.series[SLOT[name]].show !== show) this.u.setSeries(SLOT[name], { show });
    }
  }

  setView(from, to) {
    if (!this.u) return;
    this.settingView = true;
    this.u.setScale("x", { min: from, max: to });
    this.settingView = false;
  }

  view() {
    const scale = this.u?.scales.x;
    return scale ? [scale.min, scale.max] : null;
  }

  scaled(u) {
    if (!this.settingView) this.onView(u.scales.x.min, u.scales.x.max);
  }

  resize() {
    if (!this.u) return;
    const width = Math.max(280, this.host.clientWidth);
    if (width !== this.u.width || this.height() !== this.u.height) this.u.setSize({ width, height: this.height() });
  }

  /** Dashed lines where a session starts (after a night, a weekend or an outage). */
  drawSeparators(u) {
    const ctx = u.ctx;
    const times = u.data[0];
    ctx.save();
    ctx.strokeStyle = cssColour("--muted");
    ctx.globalAlpha = 0.55;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 4]);
    for (const index of this.separators) {
      const x = Math.round(u.valToPos(times[index], "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x + 0.5, u.bbox.top);
      ctx.lineTo(x + 0.5, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  /** Zoom the x range by `factor` (<1 zooms in) around the time `anchor`. */
  zoom(factor, anchor) {
    const [min, max] = this.view();
    let from = anchor - (anchor - min) * factor;
    let to = anchor + (max - anchor) * factor;
    if (to - from < MIN_SPAN_S) {
      const mid = (from + to) / 2;
      [from, to] = [mid - MIN_SPAN_S / 2, mid + MIN_SPAN_S / 2];
    }
    this.u.setScale("x", { min: from, max: to });
  }

  pan(seconds) {
    const [min, max] = this.view();
    this.u.setScale("x", { min: min + seconds, max: max + seconds });
  }

  timeAt(clientX) {
    const box = this.u.over.getBoundingClientRect();
    return this.u.posToVal(clientX - box.left, "x");
  }

  bindGestures(over) {
    over.style.touchAction = "pan-y";
    over.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        this.zoom(Math.exp(event.deltaY * 0.0015), this.timeAt(event.clientX));
      },
      { passive: false },
    );
    over.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      over.setPointerCapture(event.pointerId);
      this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY, startX: event.clientX });
      this.startGesture();
    });
    over.addEventListener("pointermove", (event) => {
      const pointer = this.pointers.get(event.pointerId);
      if (!pointer) return;
      pointer.x = event.clientX;
      pointer.y = event.clientY;
      this.moveGesture();
    });
    const end = (event) => {
      const pointer = this.pointers.get(event.pointerId);
      if (!pointer) return;
      this.pointers.delete(event.pointerId);
      const tap = Math.abs(pointer.x - pointer.startX) < 6 && this.gesture?.kind === "pan";
      if (tap && event.pointerType !== "mouse") {
        // A tap on a phone: put the crosshair there (there is no hover on a touch screen).
        const box = over.getBoundingClientRect();
        this.u.setCursor({ left: event.clientX - box.left, top: event.clientY - box.top });
      }
      this.startGesture();
    };
    over.addEventListener("pointerup", end);
    over.addEventListener("pointercancel", end);
  }

  startGesture() {
    const points = [...this.pointers.values()];
    const [min, max] = this.view() ?? [0, 0];
    if (points.length === 1) {
      this.gesture = { kind: "pan", x: points[0].x, min, max };
    } else if (points.length >= 2) {
      const distance = Math.abs(points[0].x - points[1].x) || 1;
      const anchor = this.timeAt((points[0].x + points[1].x) / 2);
      this.gesture = { kind: "pinch", distance, anchor, min, max };
    } else {
      this.gesture = null;
    }
  }

  moveGesture() {
    const g = this.gesture;
    if (!g) return;
    const points = [...this.pointers.values()];
    const width = this.u.bbox.width / devicePixelRatio;
    if (g.kind === "pan" && points.length === 1) {
      const seconds = -((points[0].x - g.x) / width) * (g.max - g.min);
      this.u.setScale("x", { min: g.min + seconds, max: g.max + seconds });
    } else if (g.kind === "pinch" && points.length >= 2) {
      const factor = g.distance / (Math.abs(points[0].x - points[1].x) || 1);
      const from = g.anchor - (g.anchor - g.min) * factor;
      const to = g.anchor + (g.max - g.anchor) * factor;
      if (to - from >= MIN_SPAN_S) this.u.setScale("x", { min: from, max: to });
    }
  }

  /** A PNG of the chart on the page's background, with `title` and `legend` written above. */
  async png(title, legend) {
    const source = this.u.ctx.canvas;
    const ratioPx = source.width / this.u.width;
    const head = Math.round(48 * ratioPx);
    const canvas = document.createElement("canvas");
    canvas.width = source.width;
    canvas.height = source.height + head;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = cssColour("--panel");
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = cssColour("--text");
    ctx.font = `600 ${Math.round(15 * ratioPx)}px system-ui, sans-serif`;
    ctx.fillText(title, 8 * ratioPx, 20 * ratioPx);
    ctx.fillStyle = cssColour("--muted");
    ctx.font = `${Math.round(12 * ratioPx)}px system-ui, sans-serif`;
    ctx.fillText(legend, 8 * ratioPx, 40 * ratioPx);
    ctx.drawImage(source, 0, head);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  destroy() {
    this.u?.destroy();
    this.u = null;
    this.host.dataset.ready = "false";
  }
}
