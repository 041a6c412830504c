// The strip under the title: connection, feed state, data age and market session.

import { byTestId } from "./dom.js";
import { duration, isNumber } from "./format.js";
import { t } from "./i18n.js";

/** Data older than this while the market is open is flagged (the service warns at 10 s). */
const AGE_WARN = 10;
const AGE_FAIL = 60;

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
  constructor({ root, onRetry }) {
    this.connection = byTestId("connection-state", root);
    this.retry = byTestId("connection-retry", root);
    this.feed = byTestId("feed-state", root);
    this.age = byTestId("data-age", root);
    this.market = byTestId("market-state", root);
    this.retry.addEventListener("click", onRetry);
    this.connState = "connecting";
    this.retryAt = null;
    this.status = null;
    this.statusAt = 0;
    this.health = null;
    this.lastTickAt = null;
  }

  setConnection(state, retryAt) {
    this.connState = state;
    this.retryAt = retryAt;
    this.renderConnection();
  }

  setServiceStatus(status, health) {
    if (status) {
      this.status = status;
      this.statusAt = Date.now();
    }
    if (health) this.health = health;
    this.renderFeed();
  }

  tick() {
    this.lastTickAt = Date.now();
  }

  renderConnection() {
    const state = this.connState;
    let text;
    if (state === "reconnecting") {
      const left = this.retryAt === null ? 0 : Math.ceil((this.retryAt - Date.now()) / 1000);
      text = left > 0 ? t("conn.reconnecting", { seconds: left }) : t("conn.reconnecting_now");
    } else {
      text = t(`conn.${state}`);
    }
    this.connection.dataset.state = state;
    if (this.connection.textContent !== text) this.connection.textContent = text;
    this.retry.hidden = !["reconnecting", "offline", "unauthorized"].includes(state);
  }

  renderFeed() {
    const status = this.status;
    if (status) {
      const state = t(`feed.state.${status.state}`);
      const running = status.state === "running";
      const connection = running ? t(`feed.connection.${status.connection}`) : "";
      this.feed.textContent = connection ? `${state} · ${connection}` : state;
      this.feed.dataset.state = status.state;
    }
    const open = marketOpen(status, this.health);
    this.market.dataset.state = open === null ? "unknown" : open ? "open" : "closed";
    this.market.textContent = open === null ? "—" : t(open ? "market.open" : "market.closed");
    this.renderAge(open);
  }

  /** The freshest of: the last tick this page received, and the service's own figure. */
  renderAge(open = marketOpen(this.status, this.health)) {
    const candidates = [];
    if (this.lastTickAt !== null && this.connState === "live") {
      candidates.push((Date.now() - this.lastTickAt) / 1000);
    }
    if (isNumber(this.status?.last_tick_age)) {
      candidates.push(this.status.last_tick_age + (Date.now() - this.statusAt) / 1000);
    }
    const age = candidates.length ? Math.min(...candidates) : null;
    this.age.textContent = duration(age);
    let level = "ok";
    if (age === null) level = "unknown";
    else if (open !== false && age >= AGE_FAIL) level = "fail";
    else if (open !== false && age >= AGE_WARN) level = "warn";
    this.age.dataset.level = level;
  }

  /** Called a few times a second: countdown and age move on their own. */
  refresh() {
    this.renderConnection();
    this.renderAge();
  }

  relabel() {
    this.renderConnection();
    this.renderFeed();
  }
}
