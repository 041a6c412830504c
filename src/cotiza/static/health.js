// The health panel: /health/detailed, polled by the page every few seconds. Check names,
// worker names and the service's notes are shown in the page's language.

import { el } from "./dom.js";
import { DASH, duration, fixed, isNumber, quantity, zonedClock } from "./format.js";
import { locale, t } from "./i18n.js";

const MAX_RESTARTS_SHOWN = 5;

let pluralRules = null;

function plurals() {
  if (pluralRules?.resolvedOptions().locale !== locale()) {
    pluralRules = new Intl.PluralRules(locale());
  }
  return pluralRules;
}

function describeValue(item) {
  const value = item.observedValue;
  const unit = item.observedUnit ?? "";
  if (value === null || value === undefined) return DASH;
  if (typeof value === "boolean") return value ? t("health.yes") : t("health.no");
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([name, v]) =>
        typeof v === "boolean"
          ? `${translated("health.worker", name)} ${v ? "✓" : "✗"}`
          : `${translated("health.field", name)}: ${typeof v === "number" ? quantity(v) : translated("health.field", v)}`,
      )
      .join(" · ");
  }
  if (typeof value === "string") {
    const key = `feed.connection.${value}`;
    const text = t(key);
    return text === key ? value : text;
  }
  if (!isNumber(value)) return String(value);
  switch (unit) {
    case "ms":
      return `${fixed(value, 1)} ${t("unit.ms")}`;
    case "s":
      return duration(value);
    case "MiB":
      return `${fixed(value, 1)} MiB`;
    case "":
      return quantity(value);
    default: {
      const key = `unit.${unit}.${plurals().select(value)}`;
      const label = t(key);
      return `${quantity(value)} ${label === key ? unit : label}`;
    }
  }
}

/** `t("prefix.name")`, or `name` itself when there is no translation for it. */
function translated(prefix, name) {
  const key = `${prefix}.${name}`;
  const text = t(key);
  return text === key ? name : text;
}

// The notes the service attaches to checks, and how each reads in the page's language.
const OUTPUTS = [
  [/^market closed$/, () => t("health.out.market_closed")],
  [/^stopped on request$/, () => t("health.out.stopped_on_request")],
  [/^not started$/, () => t("health.out.not_started")],
  [/^no data received yet$/, () => t("health.out.no_data_yet")],
  [/^no data received; market closed$/, () => t("health.out.no_data_closed")],
  [/^no data received$/, () => t("health.out.no_data")],
  [/^timed out after (.+) s$/, (m) => t("health.out.timed_out", { seconds: m[1] })],
  [
    /^(\d+) ticks dropped in the last (\S+) s \(queue full; (\d+) since start\)(?:; (\d+) samples buffered)?$/,
    (m) =>
      [
        t("health.out.ticks_dropped", { count: m[1], window: m[2], total: m[3] }),
        m[4] ? t("health.out.samples_buffered", { count: m[4] }) : null,
      ]
        .filter(Boolean)
        .join("; "),
  ],
  [/^(\d+) samples buffered$/, (m) => t("health.out.samples_buffered", { count: m[1] })],
  [/^the directory (.+) was removed; writes since then are lost$/, (m) => t("health.out.db_dir_removed", { path: m[1] })],
  [/^the database file (.+) was removed; writes since then are lost$/, (m) => t("health.out.db_file_removed", { path: m[1] })],
  [/^the database file (.+) was replaced by another file; restart to use it$/, (m) => t("health.out.db_file_replaced", { path: m[1] })],
  [/^the database file (.+) cannot be read: (.+)$/, (m) => t("health.out.db_file_unreadable", { path: m[1], error: m[2] })],
  [/^following the cluster leader's feed over the backplane$/, () => t("health.out.following_leader")],
  [/^no leader holds the lease$/, () => t("health.out.no_leader")],
  [/^this node's subscription receives nothing while Redis answers$/, () => t("health.out.bus_wedged")],
  [/^the backplane does not answer \(shared outage\): retrying$/, () => t("health.out.bus_down")],
  [/^dead: (.+)$/, (m) => t("health.out.dead", { names: m[1].split(", ").map((n) => translated("health.worker", n)).join(", ") })],
  [/^(\d+) consecutive failures/, (m) => t("health.out.write_failures", { count: m[1] })],
  [/^not running$/, () => t("health.out.not_running")],
  [/^delivery task died$/, () => t("health.out.delivery_task_died")],
  [/^supervisor task ended$/, () => t("health.out.supervisor_task_ended")],
];

/** A check's note in the page's language; an unknown one is named as a technical detail. */
export function describeOutput(output) {
  const text = String(output);
  for (const [pattern, render] of OUTPUTS) {
    const match = pattern.exec(text);
    if (match) return { text: render(match), raw: null };
  }
  return { text: t("health.out.other"), raw: text };
}

/** Restarts reported by the monitor, when the service exposes them (newest first). */
function monitorRestarts(body) {
  const source = body.monitor?.restarts ?? body.restarts ?? body.monitor_restarts;
  if (isNumber(source)) return { count: source, recent: [] };
  if (!Array.isArray(source)) return null;
  const recent = source
    .map((entry) =>
      isNumber(entry)
        ? { at: entry }
        : { at: entry.at ?? entry.time ?? entry.timestamp, why: entry.reason ?? entry.why },
    )
    .slice(-MAX_RESTARTS_SHOWN)
    .reverse();
  return { count: source.length, recent };
}

function outputNode(output) {
  const { text, raw } = describeOutput(output);
  // An unknown note keeps the service's words, marked as English for screen readers.
  return el(
    "span",
    { class: "output" },
    text,
    raw ? el("span", { class: "raw", lang: "en", text: ` ${raw}` }) : null,
  );
}

export class HealthPanel {
  constructor(root) {
    this.root = root;
    this.badge = root.querySelector('[data-testid="health-status"]');
    this.tbody = root.querySelector('[data-testid="health-checks"] tbody');
    this.fields = {};
    for (const node of root.querySelectorAll("[data-field]")) {
      this.fields[node.dataset.field] = node;
    }
    this.checkedAt = root.querySelector('[data-testid="health-checked-at"]');
    this.body = null;
    this.error = false;
  }

  update(body) {
    this.body = body;
    this.error = false;
    this.render();
  }

  unreachable() {
    this.error = true;
    this.render();
  }

  render() {
    const body = this.body;
    const status = this.error ? "unreachable" : (body?.status ?? "unknown");
    const key = this.error ? "health.unreachable" : `health.status.${status}`;
    this.badge.dataset.status = status;
    this.badge.textContent = t(key) === key ? status : t(key);
    // The figures below stay from the last answer, faded, until the service answers again.
    this.root.classList.toggle("stale", this.error);
    if (!body) return;
    const lag = body.checks?.["event_loop:lag"]?.[0];
    this.fields.ws.textContent = quantity(body.websocket_connections);
    this.fields.subscribers.textContent = quantity(body.dashboard_subscribers);
    this.fields.lag.textContent = lag ? describeValue(lag) : DASH;
    this.fields.lag.dataset.status = lag?.status ?? "";
    this.fields.uptime.textContent = duration(body.uptime);
    this.fields.worker.textContent = t(body.dashboard_worker_running ? "health.yes" : "health.no");
    const restarts = monitorRestarts(body);
    this.fields.restarts.closest("div").hidden = restarts === null;
    if (restarts) {
      const recent = restarts.recent.map((r) =>
        [zonedClock(r.at), r.why ? translated("health.reason", r.why) : ""].filter(Boolean).join(" "),
      );
      this.fields.restarts.textContent = [quantity(restarts.count), ...recent].join(" · ");
    }
    const rows = [];
    for (const [name, items] of Object.entries(body.checks ?? {})) {
      for (const item of items) {
        rows.push(
          el(
            "tr",
            { dataset: { testid: "health-check", check: name, status: item.status } },
            el(
              "th",
              { scope: "row" },
              el("span", { class: "check-name", text: translated("health.check_name", name) }),
              el("span", { class: "value", text: describeValue(item) }),
              item.output ? outputNode(item.output) : null,
            ),
            el(
              "td",
              { class: "status" },
              el("span", {
                class: "badge small",
                dataset: { status: item.status },
                text: t(`health.check.${item.status}`),
              }),
            ),
          ),
        );
      }
    }
    this.tbody.replaceChildren(...rows);
    this.checkedAt.textContent = t("health.checked_at", { time: zonedClock(body.timestamp) });
  }

  relabel() {
    this.render();
  }
}
