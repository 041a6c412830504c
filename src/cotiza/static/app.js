// The dashboard page: wires the WebSocket, the REST polls, the token and the panels together.

import { AlertsPanel } from "./alerts.js";
import { AuthPrompt, checkToken, TokenStore } from "./auth.js";
import { RatioChart } from "./chart.js";
import { Channel, ConnState } from "./connection.js";
import { FeedControls } from "./controls.js";
import { DashboardTable } from "./dashboard.js";
import { byTestId, fetchJson, FlashGate } from "./dom.js";
import { setMarketZone } from "./format.js";
import { HealthPanel } from "./health.js";
import { lang, onLangChange, setLang, translate } from "./i18n.js";
import { bindKeys } from "./keyboard.js";
import { MAX_QUOTE_ROWS, QuotesTable } from "./quotes.js";
import { RatiosTable } from "./ratios.js";
import { StatusBar } from "./statusbar.js";
import { Watchlist } from "./watchlist.js";

/** The server accepts at most this many instruments in one subscribe command. */
const SUBSCRIBE_BATCH = 500;
const POLL_INTERVAL_MS = 5000;
/** While disconnected the page polls faster, to reconnect as soon as the service answers. */
const POLL_INTERVAL_DOWN_MS = 2000;
const POLL_TIMEOUT_MS = 4000;

function wsUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(`${scheme}//${location.host}/ws/cotizaciones`);
  // Browsers cannot set headers on a WebSocket; the contract accepts ?token= instead.
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

class App {
  constructor() {
    translate();
    const serverNow = () => this.channel.serverNow();
    this.gate = new FlashGate();
    this.store = new TokenStore();
    this.watchlist = new Watchlist();
    this.statusBar = new StatusBar({
      root: document,
      onRetry: () => this.channel.retryNow(),
      serverNow,
      silence: () => this.channel.silence(),
    });
    this.quotes = new QuotesTable({
      table: byTestId("quotes-table"),
      count: byTestId("quotes-count"),
      filter: byTestId("quotes-filter"),
      sortSelect: byTestId("quotes-sort"),
      viewButtons: document.querySelectorAll('[data-testid^="quotes-view-"]'),
      exportButton: byTestId("quotes-csv"),
      watchlist: this.watchlist,
      serverNow,
      gate: this.gate,
    });
    this.ratios = new RatiosTable({
      table: byTestId("ratios-table"),
      sortSelect: byTestId("ratios-sort"),
      exportButton: byTestId("ratios-csv"),
      onSelect: (item, row) => this.openChart(item, row),
      serverNow,
      gate: this.gate,
    });
    this.dashboard = new DashboardTable({
      table: byTestId("dashboard-table"),
      status: byTestId("dashboard-updated"),
      sortSelect: byTestId("dashboard-sort"),
      exportButton: byTestId("dashboard-csv"),
      onSelect: (item, row) => this.openChart(item, row),
      serverNow,
    });
    this.chart = new RatioChart({
      panel: byTestId("chart-panel"),
      onClose: () => this.ratios.select(null),
      serverNow,
    });
    this.health = new HealthPanel(byTestId("health-section"));
    this.auth = new AuthPrompt({
      root: byTestId("auth-prompt"),
      onValid: (token, remember) => this.controls.setToken(token, remember),
    });
    this.controls = new FeedControls({
      root: byTestId("controls-section"),
      dialog: byTestId("confirm-dialog"),
      store: this.store,
      onToken: (token) => this.tokenChanged(token),
      onAction: () => this.poll(),
    });
    this.alerts = new AlertsPanel({
      root: byTestId("alerts-section"),
      dialog: byTestId("confirm-dialog"),
      store: this.store,
      onNeedToken: () => this.askToken(),
    });
    this.channel = new Channel({
      url: wsUrl(this.store.get()),
      onMessage: (message) => this.dispatch(message),
      onConnected: () => this.resubscribe(),
      onState: (state, retryAt) => {
        document.body.dataset.connection = state;
        if (state === ConnState.UNAUTHORIZED) this.auth.show();
        this.statusBar.setConnection(state, retryAt);
      },
    });
    this.subscribed = new Set(); // symbols subscribed on the current connection
    this.knownSymbols = new Set();
    this.polling = false;
    this.pollTimer = null;
    byTestId("lang-switch").addEventListener("click", () => setLang(lang() === "es" ? "en" : "es"));
    onLangChange(() => this.relabel());
    bindKeys({ filter: byTestId("quotes-filter"), chart: this.chart });
  }

  async start() {
    // A stored token that the service no longer accepts is dropped before it is used.
    const stored = this.store.get();
    const verdict = await checkToken(stored);
    if (verdict === "invalid") {
      if (stored) this.controls.setToken("", false);
      this.auth.show();
    }
    // Without a token, "valid" means the service needs none: alerts may be written freely.
    const required = verdict === "invalid" ? true : verdict === "valid" && !stored ? false : null;
    this.alerts.setTokenRequired(required);
    this.alerts.load();
    this.channel.start();
    this.poll();
    setInterval(() => this.statusBar.refresh(), 250);
    setInterval(() => this.quotes.refreshAges(this.statusBar.fresh, this.statusBar.marketOpen()), 1000);
    setInterval(() => this.ratios.refreshAges(this.statusBar.fresh, this.statusBar.marketOpen()), 1000);
  }

  /** Everything this page wants from a fresh connection; runs after every reconnect. */
  resubscribe() {
    this.auth.hide();
    this.subscribed = new Set();
    this.channel.send({ type: "subscribe_ratios", pairs: "all" });
    this.channel.send({ type: "dashboard_subscribe" });
    this.channel.send({ type: "subscribe_alerts" });
    this.alerts.load(); // the firings missed while disconnected, and the rules' state
    this.subscribe(this.knownSymbols);
    this.refreshSymbols();
    if (this.chart.pairId !== null && this.chart.following) this.chart.setRange(this.chart.range);
    // Let the health panel count this connection without waiting for the next poll.
    setTimeout(() => this.poll(), 500);
  }

  async refreshSymbols() {
    try {
      const result = await fetchJson("/api/quotes");
      if (result.ok && Array.isArray(result.body?.quotes)) {
        this.subscribe(result.body.quotes.map((quote) => quote.symbol));
      }
    } catch {
      // The next status poll brings the feed's instrument list anyway.
    }
  }

  subscribe(symbols) {
    for (const symbol of symbols) {
      if (typeof symbol === "string" && this.knownSymbols.size < MAX_QUOTE_ROWS) {
        this.knownSymbols.add(symbol);
      }
    }
    if (this.channel.state !== ConnState.LIVE) return;
    const fresh = [...this.knownSymbols].filter((symbol) => !this.subscribed.has(symbol));
    for (let i = 0; i < fresh.length; i += SUBSCRIBE_BATCH) {
      const batch = fresh.slice(i, i + SUBSCRIBE_BATCH);
      if (!this.channel.send({ type: "subscribe", instruments: batch })) return;
      for (const symbol of batch) this.subscribed.add(symbol);
    }
  }

  dispatch(message) {
    switch (message.type) {
      case "tick":
        this.gate.note();
        this.quotes.update(message);
        this.statusBar.tick();
        break;
      case "ratio":
        this.gate.note();
        this.ratios.update(message);
        this.chart.push(message);
        break;
      case "ratio_subscribed":
        if (Array.isArray(message.pairs)) this.ratios.retain(message.pairs);
        break;
      case "alert":
        this.alerts.fired(message);
        break;
      case "dashboard_data":
        this.dashboard.update(message);
        break;
      case "dashboard_error":
        this.dashboard.fail(message);
        break;
      case "error":
        if (String(message.command ?? "").includes("dashboard")) this.dashboard.fail(message);
        else console.warn("cotiza: the service refused a command:", message.message);
        break;
      default:
        break; // pong, ping, subscribed, status: nothing to show
    }
  }

  /** Health and status, every few seconds (faster while disconnected). */
  async poll() {
    clearTimeout(this.pollTimer);
    if (!this.polling) {
      this.polling = true;
      try {
        await this.pollOnce();
      } finally {
        this.polling = false;
      }
    }
    const live = this.channel.state === ConnState.LIVE;
    this.pollTimer = setTimeout(() => this.poll(), live ? POLL_INTERVAL_MS : POLL_INTERVAL_DOWN_MS);
  }

  async pollOnce() {
    const [health, status] = await Promise.allSettled([
      fetchJson("/health/detailed", { timeout: POLL_TIMEOUT_MS }),
      fetchJson("/cotizaciones/status", { timeout: POLL_TIMEOUT_MS }),
    ]);
    const healthBody = health.status === "fulfilled" ? health.value.body : null;
    const statusOk = status.status === "fulfilled" && status.value.ok;
    const statusBody = statusOk ? status.value.body : null;
    if (healthBody?.checks) this.health.update(healthBody);
    else this.health.unreachable();
    if (statusBody && setMarketZone(statusBody.market_tz)) this.relabel();
    this.statusBar.setServiceStatus(statusBody, healthBody);
    if (Array.isArray(statusBody?.instruments)) this.subscribe(statusBody.instruments);
    this.alerts.loadRules(); // a rule re-arms without a frame: its state comes from here
    // The service answers again: reconnect now rather than when the backoff says so.
    if (statusOk && [ConnState.RECONNECTING, ConnState.CONNECTING].includes(this.channel.state)) {
      this.channel.retryNow();
    }
  }

  openChart(item, row) {
    if (!item) return;
    this.ratios.select(item.pair_id);
    this.chart.open(item, row);
  }

  /** The page's token prompt, in sight and focused (from the alerts panel). */
  askToken() {
    this.auth.show();
    byTestId("auth-prompt").scrollIntoView({ block: "center" });
    this.auth.form.input.focus();
  }

  tokenChanged(token) {
    this.channel.setUrl(wsUrl(token));
    this.alerts.tokenChanged();
    if (token) this.auth.hide();
    if (this.channel.state === ConnState.UNAUTHORIZED) this.channel.retryNow();
  }

  relabel() {
    this.statusBar.relabel();
    this.quotes.relabel();
    this.ratios.relabel();
    this.dashboard.relabel();
    this.chart.relabel();
    this.health.relabel();
    this.controls.relabel();
    this.auth.relabel();
    this.alerts.relabel();
  }
}

const app = new App();
app.start();
