// The strip under the title: connection (what "live" really means, see freshness.js), feed
// state, data age, market session and the market clock. It re-renders a few times a
// second, but only a change of state is announced to screen readers.

import { byTestId } from "./dom.js";
import { clockTime, duration, isNumber, zoneLabel } from "./format.js";
import { assess, FreshnessView, isFresh, Mode } from "./freshness.js";
import { t } from "./i18n.js";

/**
 * Whether the market is open. Uses an explicit field when the service has one, otherwise
 * the feed staleness check, whose output says "market closed" outside the session.
 */
export function marketOpen(status, health) {
  if (typeof status?.market_open === "boolean") return status.market_open;
  if (typeof status?.market?.open === "boolean") return status.market.open;
  const check = health?.checks?.["feed:staleness"]?.[0];
  if (!check) return null;
  return !String(check.output ?? "").includes("market closed");
}

export class StatusBar {
  constructor({ root, onRetry, serverNow, silence }) {
    this.connection = byTestId("connection-state", root);
    this.retry = byTestId("connection-retry", root);
    this.feed = byTestId("feed-state", root);
    this.age = byTestId("data-age", root);
    this.market = byTestId("market-state", root);
    this.clock = byTestId("market-clock", root);
    this.clockLabel = byTestId("market-clock-label", root);
    this.announcer = byTestId("announcer", root);
    this.freshness = new FreshnessView({ root });
    this.serverNow = serverNow;
    this.silence = silence;
    this.retry.addEventListener("click", onRetry);
    this.connState = "connecting";
    this.retryAt = null;
    this.status = null; // the last status answer, null once a poll failed
    this.statusAt = 0;
    this.health = null;
    this.lastTickAt = null; // page clock of the last tick received
    this.lastTickServer = null; // server clock of the same
    this.mode = null;
    this.announced = "";
  }

  setConnection(state, retryAt) {
    this.connState = state;
    this.retryAt = retryAt;
    this.refresh();
  }

  /** A status poll's result; `null` when it failed (the feed and market are then unknown). */
  setServiceStatus(status, health) {
    this.status = status;
    this.statusAt = Date.now();
    this.health = status ? health : null;
    this.renderFeed();
    this.refresh();
  }

  tick() {
    this.lastTickAt = Date.now();
    this.lastTickServer = this.serverNow();
  }

  marketOpen() {
    return this.status ? marketOpen(this.status, this.health) : null;
  }

  /** Seconds since the newest data: this page's last tick, or the service's own figure. */
  dataAge() {
    const candidates = [];
    if (this.lastTickAt !== null) candidates.push((Date.now() - this.lastTickAt) / 1000);
    if (isNumber(this.status?.last_tick_age)) {
      candidates.push(this.status.last_tick_age + (Date.now() - this.statusAt) / 1000);
    }
    return candidates.length ? Math.min(...candidates) : null;
  }

  /** The server-clock time of the newest data shown (for "frozen since"). */
  dataSince() {
    const age = this.dataAge();
    if (age === null) return null;
    return (this.serverNow() - age * 1000) / 1000;
  }

  currentMode() {
    const feed = this.status ? { state: this.status.state, connection: this.status.connection } : null;
    return assess({
      conn: this.connState,
      silenceMs: this.silence(),
      feed,
      marketOpen: this.marketOpen(),
      dataAge: this.dataAge(),
    });
  }

  get fresh() {
    return isFresh(this.mode);
  }

  renderConnection() {
    const mode = this.mode;
    let text;
    if (mode === Mode.RECONNECTING) {
      const left = this.retryAt === null ? 0 : Math.ceil((this.retryAt - Date.now()) / 1000);
      text = left > 0 ? t("conn.reconnecting", { seconds: left }) : t("conn.reconnecting_now");
    } else {
      text = t(`conn.${mode}`);
    }
    this.connection.dataset.state = mode;
    if (this.connection.textContent !== text) this.connection.textContent = text;
    // Retrying without a token cannot help: the prompt asks for one instead.
    this.retry.hidden = !["reconnecting", "offline"].includes(this.connState);
  }

  renderFeed() {
    const status = this.status;
    if (status) {
      const state = t(`feed.state.${status.state}`);
      const running = status.state === "running";
      const connection = running ? t(`feed.connection.${status.connection}`) : "";
      this.feed.textContent = connection ? `${state} · ${connection}` : state;
      this.feed.dataset.state = status.state;
    } else {
      // A failed poll says nothing about the feed: show that, not the last good answer.
      this.feed.textContent = "—";
      this.feed.dataset.state = "unknown";
    }
    const open = this.marketOpen();
    this.market.dataset.state = open === null ? "unknown" : open ? "open" : "closed";
    this.market.textContent = open === null ? "—" : t(open ? "market.open" : "market.closed");
  }

  renderAge() {
    const age = this.dataAge();
    const text = duration(age);
    if (this.age.textContent !== text) this.age.textContent = text;
    const open = this.marketOpen();
    let level = "ok";
    if (age === null) level = "unknown";
    else if (open !== false && age >= 60) level = "fail";
    else if (open !== false && age >= 10) level = "warn";
    this.age.dataset.level = level;
  }

  renderClock() {
    const label = zoneLabel();
    if (this.clockLabel.textContent !== label) this.clockLabel.textContent = label;
    const text = clockTime(this.serverNow() / 1000);
    if (this.clock.textContent !== text) this.clock.textContent = text;
  }

  /** Called a few times a second: countdown, age, clock and freshness move on their own. */
  refresh() {
    this.mode = this.currentMode();
    this.renderConnection();
    this.renderAge();
    this.renderClock();
    this.freshness.render(this.mode, this.dataSince(), this.lastTickAt !== null);
    this.announce();
  }

  /** Tell screen readers about a change of state, never about the seconds ticking by. */
  announce() {
    const key = `${this.mode}|${this.freshness.banner.hidden}`;
    if (key === this.announced) return;
    this.announced = key;
    this.announcer.textContent = this.freshness.announcement();
  }

  relabel() {
    this.announced = "";
    this.freshness.relabel();
    this.renderFeed();
    this.refresh();
  }
}
