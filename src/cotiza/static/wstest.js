// The /ws-test console: open a WebSocket to this service, send JSON commands, read frames.

import { lang, setLang, t, translate } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const MAX_LINES = 500;
let socket = null;

function show(line) {
  const log = $("log");
  const lines = log.textContent ? log.textContent.split("\n") : [];
  lines.push(`${new Date().toLocaleTimeString()} ${line}`);
  log.textContent = lines.slice(-MAX_LINES).join("\n");
}

function setState(key) {
  $("state").dataset.i18n = key;
  $("state").textContent = t(key);
  const open = key === "wstest.open_state";
  $("sendbtn").disabled = !open;
  $("close").disabled = !open;
}

function connect(event) {
  event.preventDefault();
  if (socket) socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = $("token").value.trim();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  socket = new WebSocket(`${scheme}://${location.host}${$("path").value}${query}`);
  setState("wstest.connecting");
  socket.onopen = () => setState("wstest.open_state");
  socket.onmessage = (msg) => show(`← ${msg.data}`);
  socket.onclose = (ev) => {
    show(t("wstest.closed_with", { code: ev.code, reason: ev.reason || "-" }));
    setState("wstest.closed");
    socket = null;
  };
}

function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  try {
    JSON.parse(text);
  } catch {
    show(t("wstest.bad_json"));
    return;
  }
  socket?.send(text);
  show(`→ ${text}`);
}

$("connect").addEventListener("submit", connect);
$("send").addEventListener("submit", send);
$("close").addEventListener("click", () => socket?.close(1000));
$("clear").addEventListener("click", () => ($("log").textContent = ""));
$("preset").addEventListener("change", () => ($("message").value = $("preset").value));
$("lang").addEventListener("click", () => setLang(lang() === "es" ? "en" : "es"));
translate();
