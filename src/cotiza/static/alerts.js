// The alerts panel: the rules (GET /api/alerts/rules) with their state and a delete button,
// the form that creates one (alertform.js), and the latest firings, newest first: the
// history (GET /api/alerts/history) on load and after every reconnect, then each live
// `alert` frame the page's WebSocket receives once it sent `subscribe_alerts`. Writes carry
// the token the page keeps (auth.js); without one, when the service needs it, the panel says
// so and offers the page's token prompt.

import { AlertForm } from "./alertform.js";
import { conditionText, observedText, pairLabel, ruleText } from "./alerttext.js";
import { checkToken } from "./auth.js";
import { MessageLine, askConfirm, byTestId, el, fetchJson } from "./dom.js";
import { clockTime, duration, isNumber, zonedDateTime } from "./format.js";
import { t } from "./i18n.js";
import { pairNodes, pairTitle } from "./pairs.js";

/** Firings kept in the list; older ones drop off the end. */
export const MAX_FIRINGS = 20;
/** A burst of firings asks for the rules (their state) once, this long after the last. */
const RULES_REFRESH_MS = 400;
/** A firing that just arrived is marked this long. */
const FRESH_MS = 4000;
/** Firings arriving within this long of each other are announced together. */
const ANNOUNCE_MS = 500;

export class AlertsPanel {
  /** `onNeedToken()` opens the page's token prompt. */
  constructor({ root, dialog, store, onNeedToken }) {
    this.root = root;
    this.dialog = dialog;
    this.store = store;
    this.onNeedToken = onNeedToken;
    this.tbody = byTestId("alert-rules-table", root).tBodies[0];
    this.count = byTestId("alerts-count", root);
    this.note = new MessageLine(byTestId("alert-rules-result", root));
    this.tokenNote = byTestId("alerts-token-note", root);
    this.list = byTestId("alert-firings", root);
    this.empty = byTestId("alert-firings-empty", root);
    this.announcer = byTestId("alerts-announcer", root);
    this.unannounced = []; // live firings not yet said to screen readers
    this.announceTimer = null;
    this.form = new AlertForm({
      form: byTestId("alert-form", root),
      submit: (body) => this.write("POST", "/api/alerts/rules", body),
      onCreated: () => this.loadRules(),
      onUnauthorized: () => this.rejectedToken(),
    });
    this.pairs = new Map(); // pair_id -> pair (every pair, so old rules keep their names)
    this.rules = null; // null until loaded, then the rules in id order
    this.rulesText = ""; // the last answer, to redraw only on a change
    this.rulesFailed = false;
    this.firings = []; // newest first
    this.tokenRequired = null; // true, false, or null while unknown
    this.tokenRefused = false;
    this.refreshTimer = null;
    byTestId("alerts-token-open", root).addEventListener("click", () => this.onNeedToken());
    this.renderRules();
    this.renderFirings();
    this.renderAccess();
  }

  // ------------------------------------------------------------------ token and access

  /** What GET /api/auth/check said without a token: is one needed for writes? */
  setTokenRequired(required) {
    this.tokenRequired = required;
    this.renderAccess();
  }

  async tokenChanged() {
    this.tokenRefused = false;
    this.renderAccess();
    // A token forgotten before anyone asked whether one is needed: ask now.
    if (!this.store.get() && this.tokenRequired === null) {
      const verdict = await checkToken("");
      if (verdict !== "unreachable") this.setTokenRequired(verdict === "invalid");
    }
  }

  canWrite() {
    if (this.tokenRefused) return false;
    return Boolean(this.store.get()) || this.tokenRequired === false;
  }

  rejectedToken() {
    this.tokenRefused = true;
    this.note.show("alerts.unauthorized", {}, true); // the form hides, so it is said here
    this.renderAccess();
  }

  renderAccess() {
    const writable = this.canWrite();
    this.tokenNote.hidden = writable;
    this.form.setEnabled(writable);
    this.root.dataset.access = writable ? "write" : "read";
    for (const button of this.tbody.querySelectorAll("button[data-write]")) {
      button.hidden = !writable;
    }
  }

  async write(method, url, body) {
    const token = this.store.get();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetchJson(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      timeout: 10000,
    });
  }

  // ------------------------------------------------------------------------- loading

  /** Everything the panel shows; on start and after every reconnect. */
  async load() {
    await Promise.allSettled([this.loadSetup(), this.loadRules(), this.loadHistory()]);
  }

  async loadSetup() {
    const [options, pairs] = await Promise.allSettled([
      fetchJson("/api/alerts/options"),
      fetchJson("/api/ratios/pairs"),
    ]);
    if (options.status === "fulfilled" && options.value.ok) this.form.setOptions(options.value.body);
    if (pairs.status === "fulfilled" && pairs.value.ok && Array.isArray(pairs.value.body?.pairs)) {
      this.pairs = new Map(pairs.value.body.pairs.map((pair) => [pair.id, pair]));
      this.form.setPairs(pairs.value.body.pairs.filter((pair) => pair.active !== false));
      this.renderRules();
      this.renderFirings();
    }
  }

  /** The rules and their state (also on every status poll): redrawn only when changed. */
  async loadRules() {
    let changed;
    try {
      const result = await fetchJson("/api/alerts/rules");
      if (!result.ok || !Array.isArray(result.body?.rules)) throw new Error(String(result.status));
      const rules = [...result.body.rules].sort((a, b) => a.id - b.id);
      const text = JSON.stringify(rules);
      changed = this.rulesFailed || text !== this.rulesText;
      this.rules = rules;
      this.rulesText = text;
      this.rulesFailed = false;
    } catch {
      changed = !this.rulesFailed;
      this.rulesFailed = true;
    }
    if (changed) this.renderRules();
  }

  async loadHistory() {
    try {
      const result = await fetchJson(`/api/alerts/history?limit=${MAX_FIRINGS}`);
      if (result.ok && Array.isArray(result.body?.data)) this.merge(result.body.data, false);
    } catch {
      // The live frames still arrive; the next reconnect asks again.
    }
  }

  /** A live `alert` frame. */
  fired(frame) {
    this.merge([frame], true);
    this.unannounced.push(frame);
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => this.announce(), ANNOUNCE_MS);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadRules(), RULES_REFRESH_MS);
  }

  /** Add firings (history or live), once each by id, newest first, at most MAX_FIRINGS. */
  merge(items, live) {
    const byKey = new Map(this.firings.map((item) => [firingKey(item), item]));
    const now = performance.now();
    for (const item of items) {
      if (!isNumber(item?.fired_at)) continue;
      const key = firingKey(item);
      if (byKey.has(key)) continue;
      byKey.set(key, live ? { ...item, arrivedAt: now } : item);
    }
    this.firings = [...byKey.values()]
      .sort((a, b) => b.fired_at - a.fired_at || (b.id ?? 0) - (a.id ?? 0))
      .slice(0, MAX_FIRINGS);
    this.renderFirings();
    if (live) setTimeout(() => this.renderFirings(), FRESH_MS);
  }

  announce() {
    const items = this.unannounced;
    this.unannounced = [];
    if (items.length === 0) return;
    const [item] = items;
    this.announcer.textContent =
      items.length > 1
        ? t("alerts.announce_many", { count: items.length })
        : t("alerts.announce", {
            pair: pairLabel(this.pairs, item.pair_id, item.par),
            condition: conditionText(item),
            value: observedText(item.field, item.observed),
          });
  }

  // ------------------------------------------------------------------ pausing, deleting

  /** Pause (``active`` false) or resume a rule: it keeps its settings and its history. */
  async setActive(rule, active) {
    await this.changeRule(rule, "PATCH", { active }, {
      done: active ? "alerts.resumed" : "alerts.paused",
      failed: "alerts.update_failed",
    });
    // The row was redrawn: keep the keyboard on this rule's (relabelled) button.
    const again = this.tbody.querySelector(`tr[data-rule-id="${rule.id}"] [data-testid="alert-toggle"]`);
    if (again && !again.hidden) again.focus();
  }

  /** Send one change of ``rule``, say how it went, then reload the rules. */
  async changeRule(rule, method, body, { done, failed, goneIsDone = false }) {
    try {
      const result = await this.write(method, `/api/alerts/rules/${rule.id}`, body);
      if (result.ok || (goneIsDone && result.status === 404)) {
        this.note.show(done, { rule: ruleText(rule, this.pairs) });
      } else if (result.status === 401) {
        this.rejectedToken();
      } else {
        this.note.show(failed, { status: result.status }, true);
      }
    } catch {
      this.note.show("alerts.no_answer", {}, true);
    }
    await this.loadRules();
  }

  async remove(rule) {
    const text = ruleText(rule, this.pairs);
    const yes = await askConfirm(this.dialog, {
      text: t("alerts.confirm.delete", { rule: text }),
      yes: t("alerts.confirm.delete_yes"),
      no: t("controls.confirm.no"),
    });
    if (!yes) {
      this.note.show("controls.cancelled");
      return;
    }
    // Already gone (404) is what was asked for.
    await this.changeRule(rule, "DELETE", undefined, {
      done: "alerts.deleted",
      failed: "alerts.delete_failed",
      goneIsDone: true,
    });
    // The row is gone: keep the keyboard in the table, on the next rule's button if any.
    const next = this.tbody.querySelector('[data-testid="alert-delete"]:not([hidden])');
    (next ?? byTestId("alerts-heading", this.root)).focus();
  }

  // ------------------------------------------------------------------------ rendering

  renderRules() {
    const rules = this.rules;
    this.count.textContent = rules ? t("alerts.count", { count: rules.length }) : "";
    if (!rules || rules.length === 0) {
      const key = this.rulesFailed ? "alerts.load_failed" : rules ? "alerts.empty" : "alerts.loading";
      this.tbody.replaceChildren(
        el(
          "tr",
          { class: "empty" },
          el("td", { colspan: "6", text: t(key), dataset: { testid: "alert-rules-empty" } }),
        ),
      );
      return;
    }
    // A redraw while the keyboard is on a rule's button keeps it there.
    const active = this.tbody.contains(document.activeElement) ? document.activeElement.closest("tr") : null;
    this.tbody.replaceChildren(...rules.map((rule) => this.ruleRow(rule)));
    this.renderAccess();
    const again = active && this.tbody.querySelector(`tr[data-rule-id="${active.dataset.ruleId}"] button`);
    if (again) again.focus();
  }

  ruleRow(rule) {
    const pair = this.pairs.get(rule.pair_id);
    const name = pair
      ? el("th", { scope: "row", title: pairTitle(pair) }, ...pairNodes(pair))
      : el("th", { scope: "row" }, el("span", { class: "ticker", text: rule.par ?? `#${rule.pair_id}` }));
    const state = rule.active === false ? "inactive" : rule.state;
    const stateCell = el(
      "td",
      { dataset: { col: "state", label: t("alerts.col.state") } },
      el("span", {
        class: "badge small",
        dataset: { status: STATE_STATUS[state] ?? "unknown" },
        text: t(`alerts.state.${state}`),
      }),
    );
    if (isNumber(rule.last_fired_at)) {
      stateCell.append(
        el("span", {
          class: "muted small fired-at",
          title: zonedDateTime(rule.last_fired_at),
          text: t("alerts.last_fired", { time: clockTime(rule.last_fired_at) }),
        }),
      );
    }
    const paused = rule.active === false;
    const toggle = el("button", {
      type: "button",
      dataset: { testid: "alert-toggle", write: "" },
      "aria-label": t(paused ? "alerts.resume_label" : "alerts.pause_label", { rule: ruleText(rule, this.pairs) }),
      text: t(paused ? "alerts.resume" : "alerts.pause"),
    });
    toggle.addEventListener("click", () => this.setActive(rule, paused));
    const remove = el("button", {
      type: "button",
      class: "stop",
      dataset: { testid: "alert-delete", write: "" },
      "aria-label": t("alerts.delete_label", { rule: ruleText(rule, this.pairs) }),
      text: t("alerts.delete"),
    });
    remove.addEventListener("click", () => this.remove(rule));
    const channels = rule.channels.map((channel) => t(`alerts.channel.${channel}`)).join(", ");
    return el(
      "tr",
      { dataset: { testid: "alert-rule", ruleId: String(rule.id), pairId: String(rule.pair_id), state } },
      name,
      el(
        "td",
        { dataset: { col: "condition", label: t("alerts.col.condition") } },
        conditionText(rule),
        rule.note
          ? el("span", { class: "muted small note", dataset: { testid: "alert-note-text" }, text: rule.note })
          : null,
      ),
      el("td", {
        class: "num",
        dataset: { col: "cooldown", label: t("alerts.col.cooldown") },
        text: duration(rule.cooldown_s),
      }),
      el("td", { dataset: { col: "channels", label: t("alerts.col.channels") }, text: channels }),
      stateCell,
      el("td", { class: "actions", dataset: { col: "actions" } }, toggle, remove),
    );
  }

  renderFirings() {
    this.empty.hidden = this.firings.length > 0;
    const now = performance.now();
    this.list.replaceChildren(
      ...this.firings.map((item) => {
        const fresh = item.arrivedAt !== undefined && now - item.arrivedAt < FRESH_MS;
        return el(
          "li",
          {
            class: fresh ? "fresh" : null,
            dataset: {
              testid: "alert-firing",
              ruleId: String(item.rule_id ?? ""),
              pairId: String(item.pair_id),
              firedAt: String(item.fired_at),
            },
          },
          el("time", {
            datetime: new Date(item.fired_at * 1000).toISOString(),
            title: zonedDateTime(item.fired_at),
            text: clockTime(item.fired_at),
          }),
          el("span", { class: "ticker", text: pairLabel(this.pairs, item.pair_id, item.par) }),
          el("span", { class: "condition", text: conditionText(item) }),
          el("span", {
            class: "observed",
            text: t("alerts.observed", { value: observedText(item.field, item.observed) }),
          }),
        );
      }),
    );
  }

  relabel() {
    this.form.relabel();
    this.renderRules();
    this.renderFirings();
    this.note.render();
  }
}

const STATE_STATUS = { armed: "pass", fired: "warn", inactive: "unknown" };

/** Firings are keyed by their history id; one that could not be stored by rule and time. */
function firingKey(item) {
  return item.id !== null && item.id !== undefined ? `id:${item.id}` : `r:${item.rule_id}@${item.fired_at}`;
}
