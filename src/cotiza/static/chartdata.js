// The chart's data, without any drawing: ranges and resolutions, series built from
// /api/ratios/history with gaps kept as gaps, rolling bands over a stated window, session
// separators in the market's time zone, live points appended, and the CSV of a view.

import { isNumber, isoInZone, zoneOffset } from "./format.js";

/** Preset ranges; `band` is the rolling window of the ±1.5σ bands on that range. */
export const RANGES = {
  "1h": { seconds: 3600 },
  "1d": { seconds: 86400 },
  "1w": { seconds: 7 * 86400 },
  "1m": { seconds: 30 * 86400 },
};

/** Bucket sizes the page asks for (the service samples every 10 s by default). */
const RESOLUTIONS = [10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];
/** About this many buckets per view: enough detail, little data. */
const TARGET_POINTS = 600;
/** The chart never holds more points than this, however long the page stays open. */
export const MAX_CHART_POINTS = 5000;
/** A pause this long (or a change of market day) starts a new session. */
const SESSION_GAP_S = 1800;
export const BAND_WIDTH = 1.5;
/** Fewer samples than this in the window leave the band empty rather than noisy. */
const BAND_MIN_POINTS = 5;

export function resolutionFor(spanSeconds) {
  return RESOLUTIONS.find((r) => spanSeconds / r <= TARGET_POINTS) ?? RESOLUTIONS.at(-1);
}

/**
 * The bands' window for a visible span: a 180-sample band (30 min at 10 s) says nothing on
 * a month of 2-hour buckets, so the window grows with the view and is stated in the legend.
 */
export function bandWindowFor(spanSeconds) {
  if (spanSeconds <= 3 * 3600) return 600;
  if (spanSeconds <= 2 * 86400) return 7200;
  if (spanSeconds <= 10 * 86400) return 86400;
  return 7 * 86400;
}

export const FIELDS = ["mid", "bid", "ask", "last"];
const SOURCE = { mid: "mid_ratio", bid: "bid_ratio", ask: "ask_ratio", last: "last_ratio" };

function value(v) {
  return isNumber(v) ? v : null;
}

/** `spacing` is the data's own typical step (stored samples can be sparser than buckets). */
export function emptySeries(resolution, spacing = resolution) {
  return { resolution, spacing, t: [], mid: [], bid: [], ask: [], last: [], gaps: 0 };
}

/** The median step between consecutive rows' times: the data's own rhythm. */
export function typicalSpacing(rows) {
  const times = rows.map((row) => row.asof).filter(isNumber).sort((a, b) => a - b);
  const steps = [];
  for (let i = 1; i < times.length; i += 1) steps.push(times[i] - times[i - 1]);
  if (steps.length === 0) return null;
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)];
}

function pushGap(series, at) {
  series.t.push(at);
  for (const field of FIELDS) series[field].push(null);
  series.gaps += 1;
}

/** The shortest pause drawn as a gap (outage, night, weekend) rather than a step. */
export function gapLimit(series) {
  return Math.max(2.5 * series.resolution, 3 * series.spacing, 60);
}

function appendRow(series, at, row) {
  const last = series.t.at(-1);
  if (last !== undefined && at - last > gapLimit(series)) {
    pushGap(series, last + series.resolution);
  }
  series.t.push(at);
  for (const field of FIELDS) series[field].push(value(row[SOURCE[field]]));
}

/** Add a stored history row (oldest first); rows out of order are ignored. */
export function appendHistory(series, row) {
  const last = series.t.at(-1);
  if (!isNumber(row.asof) || (last !== undefined && row.asof <= last)) return;
  appendRow(series, row.asof, row);
  trim(series);
}

/**
 * Add a live `ratio` push at its own time: within the newest point's bucket it replaces
 * that point (so the line ends at the latest value), otherwise it starts a new point.
 * Returns false when the push is older than the series.
 */
export function appendLive(series, message) {
  if (!isNumber(message.asof) || !isNumber(message.mid_ratio)) return false;
  const last = series.t.at(-1);
  if (last !== undefined && message.asof < last) return false;
  const r = series.resolution;
  const i = series.t.length - 1;
  if (last !== undefined && series.mid[i] !== null && Math.floor(last / r) === Math.floor(message.asof / r)) {
    series.t[i] = message.asof;
    for (const field of FIELDS) series[field][i] = value(message[SOURCE[field]]);
  } else {
    appendRow(series, message.asof, message);
  }
  trim(series);
  return true;
}

function trim(series) {
  const excess = series.t.length - MAX_CHART_POINTS;
  if (excess > 0) {
    series.t.splice(0, excess);
    for (const field of FIELDS) series[field].splice(0, excess);
  }
}

/**
 * Rolling mean and ±`width`σ (population) of `values` over the last `window` seconds of
 * `times`, skipping nulls; null where the value is null or the window has too few points.
 */
export function rollingBands(times, values, window, width = BAND_WIDTH) {
  const n = times.length;
  const sma = new Array(n).fill(null);
  const upper = new Array(n).fill(null);
  const lower = new Array(n).fill(null);
  const shift = values.find(isNumber) ?? 0; // centring keeps the sums of squares accurate
  let start = 0;
  let count = 0;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < n; i += 1) {
    const v = values[i];
    if (isNumber(v)) {
      count += 1;
      sum += v - shift;
      squares += (v - shift) ** 2;
    }
    while (times[start] <= times[i] - window) {
      const old = values[start];
      if (isNumber(old)) {
        count -= 1;
        sum -= old - shift;
        squares -= (old - shift) ** 2;
      }
      start += 1;
    }
    if (!isNumber(v) || count < BAND_MIN_POINTS) continue;
    const mean = sum / count;
    const sd = Math.sqrt(Math.max(squares / count - mean * mean, 0));
    sma[i] = mean + shift;
    upper[i] = sma[i] + width * sd;
    lower[i] = sma[i] - width * sd;
  }
  return { sma, upper, lower };
}

/** Indices where a session starts: after a long pause, or on a new market-zone day. */
export function sessionStarts(series) {
  const starts = [];
  const offsets = new Map();
  const dayOf = (time) => {
    const hour = Math.floor(time / 3600);
    if (!offsets.has(hour)) offsets.set(hour, zoneOffset(time));
    return Math.floor((time + offsets.get(hour)) / 86400);
  };
  let previous = null;
  for (let i = 0; i < series.t.length; i += 1) {
    if (series.mid[i] === null) continue;
    const time = series.t[i];
    if (previous !== null && (time - previous > SESSION_GAP_S || dayOf(time) !== dayOf(previous))) {
      starts.push(i);
    }
    previous = time;
  }
  return starts;
}

/** Count of points with a mid value. */
export function pointCount(series) {
  return series.mid.reduce((n, v) => n + (v === null ? 0 : 1), 0);
}

/** Rows of the points inside [from, to] for a CSV file, times in the market's zone. */
export function viewRows(series, bands, from, to) {
  const rows = [];
  for (let i = 0; i < series.t.length; i += 1) {
    const time = series.t[i];
    if (time < from || time > to || series.mid[i] === null) continue;
    rows.push([
      isoInZone(time),
      time,
      series.mid[i],
      series.bid[i],
      series.ask[i],
      series.last[i],
      bands.sma[i],
      bands.lower[i],
      bands.upper[i],
    ]);
  }
  return rows;
}
