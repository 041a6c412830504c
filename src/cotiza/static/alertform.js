// The form that creates an alert rule: a pair from the configured ones, a field and an
// operator from what the service allows (GET /api/alerts/options), a level, an optional
// minimum wait and the channels. The service alone validates: its 422 is shown beside the
// form, the field it names is marked invalid and gets the focus.

import { fieldName, opName, parseNumber, refusal } from "./alerttext.js";
import { byTestId, el } from "./dom.js";
import { t } from "./i18n.js";
import { pairText } from "./pairs.js";

const DEFAULT_FIELD = "mid_ratio";
const DEFAULT_OP = ">";
const CHANNELS = ["ws", "webhook", "telegram"];

export class AlertForm {
  /**
   * `submit(body)` sends the rule and resolves to fetchJson's result; `onCreated(rule)` and
   * `onUnauthorized()` are told how it went.
   */
  constructor({ form, submit, onCreated, onUnauthorized }) {
    this.form = form;
    this.submitRule = submit;
    this.onCreated = onCreated;
    this.onUnauthorized = onUnauthorized;
    this.pair = byTestId("alert-pair", form);
    this.field = byTestId("alert-field", form);
    this.op = byTestId("alert-op", form);
    this.value = byTestId("alert-value", form);
    this.cooldown = byTestId("alert-cooldown", form);
    this.note = byTestId("alert-note", form);
    this.channels = byTestId("alert-channels", form);
    this.button = byTestId("alert-create", form);
    this.result = byTestId("alert-form-result", form);
    // Request fields -> their inputs, to mark the one a refusal names.
    this.inputs = {
      pair_id: this.pair,
      field: this.field,
      op: this.op,
      value: this.value,
      cooldown_s: this.cooldown,
      note: this.note,
    };
    this.options = null; // GET /api/alerts/options
    this.pairs = []; // active pairs, in the service's order
    this.enabled = true;
    this.busy = false;
    this.message = null; // { key, vars, isError, body }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    for (const input of Object.values(this.inputs)) {
      input.addEventListener("input", () => this.markValid(input));
    }
    this.render();
  }

  setOptions(options) {
    this.options = options;
    this.render();
  }

  setPairs(pairs) {
    this.pairs = pairs;
    this.render();
  }

  /** Writes allowed (a token is kept, or none is needed)? The form shows only then. */
  setEnabled(enabled) {
    this.enabled = enabled;
    this.form.hidden = !enabled;
  }

  /** The label a request field has in this form ("Nivel" for `value`). */
  labelOf(name) {
    const input = this.inputs[name];
    if (input) return input.closest("label")?.querySelector("span")?.textContent ?? name;
    if (name === "channels") return t("alerts.form.channels");
    return name;
  }

  body() {
    const body = {
      pair_id: Number(this.pair.value),
      field: this.field.value,
      op: this.op.value,
      channels: [...this.channels.querySelectorAll("input:checked")].map((box) => box.value),
    };
    const value = parseNumber(this.value.value);
    if (value !== undefined) body.value = value;
    const cooldown = parseNumber(this.cooldown.value);
    if (cooldown !== undefined) body.cooldown_s = cooldown;
    const note = this.note.value.trim();
    if (note) body.note = note;
    return body;
  }

  async send() {
    if (this.busy) return;
    for (const input of Object.values(this.inputs)) this.markValid(input);
    this.busy = true;
    this.button.disabled = true;
    this.show({ key: "alerts.saving" });
    try {
      const result = await this.submitRule(this.body());
      if (result.ok) {
        this.value.value = "";
        this.note.value = "";
        this.show({ key: "alerts.created", vars: { id: result.body?.id ?? "?" } });
        this.onCreated(result.body);
      } else if (result.status === 401) {
        this.show({ key: "alerts.unauthorized", isError: true });
        this.onUnauthorized();
      } else if (result.status === 422) {
        this.show({ key: "alerts.rejected", isError: true, body: result.body });
        const { field } = refusal(result.body, (name) => this.labelOf(name));
        const input = this.inputs[field];
        if (input) {
          // The refusal is read out with the field, and the field is where the fix goes.
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", this.result.id);
          input.focus();
        }
      } else {
        this.show({ key: "alerts.failed", vars: { status: result.status }, isError: true });
      }
    } catch {
      this.show({ key: "alerts.no_answer", isError: true });
    } finally {
      this.busy = false;
      this.button.disabled = this.pairs.length === 0;
    }
  }

  markValid(input) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }

  show(message) {
    this.message = message;
    this.renderMessage();
  }

  renderMessage() {
    const { key, vars = {}, isError = false, body } = this.message ?? {};
    let text = key ? t(key, vars) : "";
    if (body !== undefined) {
      const detail = refusal(body, (name) => this.labelOf(name)).text;
      text = t(key, { detail: detail || t("alerts.no_detail") });
    }
    this.result.textContent = text;
    this.result.classList.toggle("error", isError);
    this.result.dataset.state = key ? (isError ? "error" : "ok") : "";
  }

  /** Rebuild the selects and channel boxes in the page's language, keeping the choices. */
  render() {
    const options = this.options;
    const keep = (select, fallback) => select.value || fallback;
    const pairValue = keep(this.pair, this.pairs[0] ? String(this.pairs[0].id) : "");
    this.pair.replaceChildren(
      ...(this.pairs.length
        ? this.pairs.map((pair) => el("option", { value: String(pair.id), text: pairText(pair) }))
        : [el("option", { value: "", text: t("alerts.form.no_pairs") })]),
    );
    this.pair.value = pairValue;
    if (this.pair.selectedIndex < 0) this.pair.selectedIndex = 0;

    const fields = options?.fields ?? [DEFAULT_FIELD];
    const fieldValue = keep(this.field, DEFAULT_FIELD);
    this.field.replaceChildren(...fields.map((f) => el("option", { value: f, text: fieldName(f) })));
    this.field.value = fields.includes(fieldValue) ? fieldValue : fields[0];

    const ops = options?.ops ?? [DEFAULT_OP];
    const opValue = keep(this.op, DEFAULT_OP);
    this.op.replaceChildren(...ops.map((op) => el("option", { value: op, text: opName(op) })));
    this.op.value = ops.includes(opValue) ? opValue : ops[0];

    this.cooldown.placeholder = options
      ? t("alerts.form.cooldown_default", { seconds: options.default_cooldown_s })
      : "";
    this.renderChannels();
    this.button.disabled = this.busy || this.pairs.length === 0;
    this.renderMessage();
  }

  renderChannels() {
    const configured = this.options?.channels ?? { ws: true };
    const checked = new Set(
      [...this.channels.querySelectorAll("input")].filter((box) => box.checked).map((box) => box.value),
    );
    if (this.channels.querySelectorAll("input").length === 0) checked.add("ws");
    const legend = this.channels.querySelector("legend");
    const boxes = CHANNELS.filter((name) => name in configured).map((name) => {
      const on = configured[name] === true;
      const box = el("input", {
        type: "checkbox",
        value: name,
        dataset: { testid: `alert-channel-${name}` },
        disabled: !on,
      });
      box.checked = on && checked.has(name);
      const title = t(`alerts.channel.${name}`);
      const label = on ? title : t("alerts.channel.off", { name: title });
      return el("label", { class: "check" }, box, " ", el("span", { text: label }));
    });
    this.channels.replaceChildren(legend, ...boxes);
  }

  relabel() {
    this.render();
  }
}
