// Feed control: start, stop, restart. Shown once a checked token is set; stopping and
// restarting ask for confirmation first; the service's replies are shown in the page's
// language, not the server's English.

import { TokenForm } from "./auth.js";
import { MessageLine, askConfirm, byTestId, fetchJson } from "./dom.js";
import { t } from "./i18n.js";

const ACTIONS = { start: "iniciar", stop: "detener", restart: "reiniciar" };
const CONFIRM = new Set(["stop", "restart"]);

/** The service's reply messages, by the page's own key for each. */
const REPLIES = {
  "feed started": "controls.reply.started",
  "feed already running": "controls.reply.already_running",
  "feed stopped": "controls.reply.stopped",
  "feed was not running": "controls.reply.not_running",
  "feed restarted": "controls.reply.restarted",
};

export class FeedControls {
  constructor({ root, dialog, store, onToken, onAction }) {
    this.root = root;
    this.dialog = dialog;
    this.store = store;
    this.onToken = onToken;
    this.onAction = onAction;
    this.form = new TokenForm({
      form: byTestId("token-form", root),
      prefix: "token",
      onValid: (token, remember) => this.setToken(token, remember),
    });
    this.forget = byTestId("token-forget", root);
    this.buttons = byTestId("feed-buttons", root);
    this.hint = byTestId("controls-hint", root);
    this.note = new MessageLine(byTestId("control-result", root));
    this.token = store.get();
    this.forget.addEventListener("click", () => this.setToken("", false));
    for (const action of Object.keys(ACTIONS)) {
      byTestId(`feed-${action}`, root).addEventListener("click", () => this.request(action));
    }
    this.render();
  }

  setToken(token, remember) {
    this.token = token;
    this.note.message = null; // said again by render()
    if (token) this.store.save(token, remember);
    else this.store.clear();
    this.render();
    this.onToken(token);
  }

  async request(action) {
    if (CONFIRM.has(action) && !(await this.confirm(action))) {
      this.note.show("controls.cancelled");
      return;
    }
    await this.run(action);
  }

  /** Ask in a modal dialog, in the page's language; resolves true on "yes". */
  confirm(action) {
    return askConfirm(this.dialog, {
      text: t(`controls.confirm.${action}`),
      yes: t(`controls.confirm.${action}_yes`),
      no: t("controls.confirm.no"),
    });
  }

  async run(action) {
    this.setBusy(true);
    this.note.show("controls.working");
    try {
      const result = await fetchJson(`/cotizaciones/${ACTIONS[action]}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.token}` },
        timeout: 20000,
      });
      if (result.ok) {
        this.note.show(REPLIES[result.body?.message] ?? `controls.reply.${action}_done`);
      } else if (result.status === 401) {
        this.note.show("controls.unauthorized", {}, true);
      } else {
        this.note.show("controls.failed", { status: result.status }, true);
      }
    } catch {
      this.note.show("controls.no_answer", {}, true);
    } finally {
      this.setBusy(false);
      this.onAction();
    }
  }

  setBusy(busy) {
    for (const button of this.buttons.querySelectorAll("button")) button.disabled = busy;
  }

  render() {
    const hasToken = this.token !== "";
    this.buttons.hidden = !hasToken;
    this.forget.hidden = !hasToken;
    this.form.form.hidden = hasToken;
    const remembered = hasToken && this.store.remembered();
    this.hint.textContent = t(
      hasToken ? (remembered ? "controls.token_remembered" : "controls.token_set") : "controls.hint",
    );
    this.root.dataset.token = hasToken ? "set" : "none";
    this.note.render();
  }

  relabel() {
    this.form.relabel();
    this.render();
  }
}
