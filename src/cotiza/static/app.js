// The dashboard page: wires the WebSocket, the REST polls and the panels together.

import { Channel, ConnState } from "./connection.js";
import { FeedControls } from "./controls.js";
import { DashboardTable } from "./dashboard.js";
import { byTestId, fetchJson } from "./dom.js";
import { HealthPanel } from "./health.js";
import { lang, onLangChange, setLang, translate } from "./i18n.js";
import { MAX_QUOTE_ROWS, QuotesTable } from "./quotes.js";
import { RatioChart } from "./chart.js";
import { RatiosTable } from "./ratios.js";
import { StatusBar } from "./statusbar.js";

/** The server accepts at most this many instruments in one subscribe command. */
const SUBSCRIBE_BATCH = 500;
const POLL_INTERVAL_MS = 5000;

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
    this.statusBar = new StatusBar({ root: document, onRetry: () => this.channel.retryNow() });
    this.quotes = new QuotesTable({
      tbody: byTestId("quotes-table").tBodies[0],
      count: byTestId("quotes-count"),
      filter: byTestId("quotes-filter"),
      serverNow: () => this.channel.serverNow(),
    });
    this.ratios = new RatiosTable({
      tbody: byTestId("ratios-table").tBodies[0],
      onSelect: (item) => this.openChart(item),
    });
    this.dashboard = new DashboardTable({
      tbody: byTestId("dashboard-table").tBodies[0],
      status: byTestId("dashboard-updated"),
      onSelect: (item) => this.openChart(item),
    });
    this.chart = new RatioChart({
      panel: byTestId("chart-panel"),
      onClose: () => this.ratios.select(null),
    });
    this.health = new HealthPanel(byTestId("health-section"));
    this.controls = new FeedControls({
      root: byTestId("controls-section"),
      onToken: (token) => this.tokenChanged(token),
      onAction: () => this.poll(),
    });
    this.channel = new Channel({
      url: wsUrl(this.controls.token),
      onMessage: (message) => this.dispatch(message),
      onConnected: () => this.resubscribe(),
      onState: (state, retryAt) => {
        document.body.dataset.connection = state;
        this.statusBar.setConnection(state, retryAt);
      },
    });
    this.subscribed = new Set(); // symbols subscribed on the current connection
    this.knownSymbols = new Set();
    this.polling = false;
    byTestId("lang-switch").addEventListener("click", () => setLang(lang() === "es" ? "en" : "es"));
    onLangChange(() => this.relabel());
  }

  start() {
    this.channel.start();
    this.poll();
    setInterval(() => this.poll(), POLL_INTERVAL_MS);
    setInterval(() => this.statusBar.refresh(), 250);
    setInterval(() => this.quotes.refreshAges(), 1000);
  }

  /** Everything this page wants from a fresh connection; runs after every reconnect. */
  resubscribe() {
    this.subscribed = new Set();
    this.channel.send({ type: "subscribe_ratios", pairs: "all" });
    this.channel.send({ type: "dashboard_subscribe" });
    this.subscribe(this.knownSymbols);
    this.refreshSymbols();
    if (this.chart.pairId !== null) this.chart.load(); // fill the gap the outage left
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
        this.quotes.update(message);
        this.statusBar.tick();
        break;
      case "ratio":
        this.ratios.update(message);
        this.chart.push(message);
        break;
      case "ratio_subscribed":
        if (Array.isArray(message.pairs)) this.ratios.retain(message.pairs);
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

  async poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      const [health, status] = await Promise.allSettled([
        fetchJson("/health/detailed"),
        fetchJson("/cotizaciones/status"),
      ]);
      const healthBody = health.status === "fulfilled" ? health.value.body : null;
      const statusOk = status.status === "fulfilled" && status.value.ok;
      const statusBody = statusOk ? status.value.body : null;
      if (healthBody?.checks) this.health.update(healthBody);
      else this.health.unreachable();
      this.statusBar.setServiceStatus(statusBody, healthBody);
      if (Array.isArray(statusBody?.instruments)) this.subscribe(statusBody.instruments);
    } finally {
      this.polling = false;
    }
  }

  openChart(item) {
    if (!item) return;
    this.ratios.select(item.pair_id);
    this.chart.open(item);
  }

  tokenChanged(token) {
    this.channel.setUrl(wsUrl(token));
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
  }
}

const app = new App();
app.start();
