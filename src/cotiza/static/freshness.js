// Whether what the page shows is live. "Live" means fresh data, not an open socket: a
// frozen server, a half-open connection, a stopped feed or data older than the limit while
// the market is open all turn the page to "frozen" — a full-width banner with the time of
// the last data, greyed rows, and a changed tab title and favicon.

import { byTestId } from "./dom.js";
import { clockTime, isNumber, zoneLabel } from "./format.js";
import { t } from "./i18n.js";

/** No frame at all for this long (pings are answered every few seconds) means frozen. */
export const SILENCE_LIMIT_MS = 10_000;
/** Data older than this while the market is open is not live (the service warns at 10 s). */
export const AGE_LIMIT_S = 10;

export const Mode = Object.freeze({
  LIVE: "live",
  CLOSED: "closed", // connected, market closed, nothing new: normal, not an alarm
  STALE: "stale", // connected and answering, but no new market data
  FROZEN: "frozen", // connected, but the service itself went silent
  FEED_STOPPED: "feed_stopped",
  FEED_DOWN: "feed_down", // feed running but disconnected from upstream
  CONNECTING: "connecting",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
  UNAUTHORIZED: "unauthorized",
});

/**
 * The page's mode from what it knows: `conn` (the socket's state), `silenceMs` since the
 * last frame, `feed` ({state, connection} from the last status answer, or null when that
 * poll failed), `marketOpen` (true, false or null) and `dataAge` in seconds (or null).
 * Pure, so the rules can be read and tested in one place.
 */
export function assess({ conn, silenceMs, feed, marketOpen, dataAge }) {
  if (conn !== "live") return conn in REASONS ? conn : Mode.RECONNECTING;
  if (isNumber(silenceMs) && silenceMs >= SILENCE_LIMIT_MS) return Mode.FROZEN;
  if (feed && feed.state !== "running") return Mode.FEED_STOPPED;
  if (feed && feed.connection && feed.connection !== "connected") return Mode.FEED_DOWN;
  const old = !isNumber(dataAge) || dataAge >= AGE_LIMIT_S;
  if (old && marketOpen === false) return Mode.CLOSED;
  if (old && isNumber(dataAge)) return Mode.STALE;
  if (!isNumber(dataAge)) return Mode.CONNECTING; // connected, first data not here yet
  return Mode.LIVE;
}

/** Modes in which the shown data must not look current. */
const REASONS = {
  stale: "fresh.reason.stale",
  frozen: "fresh.reason.frozen",
  feed_stopped: "fresh.reason.feed_stopped",
  feed_down: "fresh.reason.feed_down",
  connecting: "fresh.reason.connecting",
  reconnecting: "fresh.reason.reconnecting",
  offline: "fresh.reason.offline",
  unauthorized: "fresh.reason.unauthorized",
};

export function isFresh(mode) {
  return mode === Mode.LIVE || mode === Mode.CLOSED;
}

const FAVICON_COLOURS = { live: "#2da44e", closed: "#8a97a8", warn: "#d29922", down: "#cf222e" };

function favicon(colour, hollow) {
  const fill = hollow ? "none" : colour;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">` +
    `<circle cx="8" cy="8" r="6" fill="${fill}" stroke="${colour}" stroke-width="3"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/** The banner, tab title, favicon and `body[data-fresh]` for a mode. */
export class FreshnessView {
  constructor({ root = document }) {
    this.banner = byTestId("stale-banner", root);
    this.text = byTestId("stale-banner-text", root);
    this.icon = document.querySelector('link[rel="icon"]');
    this.mode = null;
    this.since = null;
    this.rendered = "";
    this.hasData = false;
  }

  /** Show `mode`; `since` is the epoch time (server clock) of the newest data shown. */
  render(mode, since, hasData) {
    this.mode = mode;
    this.since = since;
    this.hasData = hasData;
    const fresh = isFresh(mode);
    const showBanner = !fresh && hasData && mode !== Mode.CONNECTING;
    const text = showBanner ? this.bannerText() : "";
    const key = `${mode}|${showBanner}|${text}`;
    if (key === this.rendered) return;
    this.rendered = key;
    document.body.dataset.fresh = String(fresh);
    document.body.dataset.mode = mode;
    this.banner.hidden = !showBanner;
    this.banner.dataset.mode = mode;
    this.text.textContent = text;
    document.title = fresh ? t("title.live") : t("title.frozen");
    const tone = fresh
      ? mode === Mode.LIVE
        ? "live"
        : "closed"
      : ["stale", "frozen", "feed_stopped", "feed_down"].includes(mode)
        ? "warn"
        : "down";
    const href = favicon(FAVICON_COLOURS[tone], !fresh);
    if (this.icon && this.icon.getAttribute("href") !== href) this.icon.setAttribute("href", href);
    this.banner.dataset.tone = tone;
  }

  bannerText() {
    const reason = t(REASONS[this.mode] ?? "fresh.reason.reconnecting");
    if (!isNumber(this.since)) return t("fresh.banner_unknown", { reason });
    return t("fresh.banner", { time: clockTime(this.since), zone: zoneLabel(), reason });
  }

  /** Text for screen readers: the same sentence as the banner, or the live state. */
  announcement() {
    if (this.banner.hidden) return t(`fresh.announce.${this.mode}`);
    return this.text.textContent;
  }

  relabel() {
    this.rendered = "";
    if (this.mode !== null) this.render(this.mode, this.since, this.hasData);
  }
}
