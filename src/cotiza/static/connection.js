// The page's single WebSocket: connects, keeps alive, and reconnects with exponential
// backoff and jitter. Whoever owns it resubscribes in `onConnected`, which runs after
// every (re)connection once the server's "connection" frame has arrived. It pings every
// few seconds so that a quiet market and a frozen server can be told apart: a live
// server always answers, so `silence()` measures the server, not the market.

export const ConnState = Object.freeze({
  CONNECTING: "connecting",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
  UNAUTHORIZED: "unauthorized",
});

const CLOSE_POLICY = 1008;

/**
 * Delay before reconnect attempt `attempt` (0-based), in milliseconds: the ceiling doubles
 * from `base` up to `max`, and the delay is drawn from its upper half so that many pages
 * dropped by one restart do not all come back in the same instant.
 */
export function backoffDelay(attempt, base = 500, max = 30000, random = Math.random) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (random() * ceiling) / 2;
}

export class Channel {
  constructor({
    url,
    onMessage,
    onConnected,
    onState,
    pingInterval = 3000,
    silenceLimit = 20000,
    connectTimeout = 10000,
  }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onConnected = onConnected;
    this.onState = onState;
    this.pingInterval = pingInterval;
    this.silenceLimit = silenceLimit;
    this.connectTimeout = connectTimeout;
    this.connectTimer = null;
    this.ws = null;
    this.state = ConnState.CONNECTING;
    this.attempt = 0;
    this.retryAt = null;
    this.retryTimer = null;
    this.heartbeat = null;
    this.lastReceived = 0;
    this.clockOffsetMs = 0;
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => this.drop(ConnState.OFFLINE));
  }

  start() {
    this.connect();
  }

  /** The server's clock in epoch milliseconds, estimated from its timestamps. */
  serverNow() {
    return Date.now() + this.clockOffsetMs;
  }

  send(message) {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Milliseconds since the last frame of a live connection; null when not connected. */
  silence() {
    return this.state === ConnState.LIVE ? Date.now() - this.lastReceived : null;
  }

  /** Use `url` from the next connection on (e.g. after a token was entered). */
  setUrl(url) {
    this.url = url;
  }

  /** Connect now instead of waiting out the backoff (the service was seen answering). */
  retryNow() {
    if (this.ws !== null) return; // connected, or an attempt is already under way
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.connect();
  }

  setState(state) {
    this.state = state;
    this.onState(state, this.retryAt);
  }

  connect() {
    this.retryAt = null;
    this.setState(this.attempt === 0 ? ConnState.CONNECTING : ConnState.RECONNECTING);
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
    // An error is always followed by a close event, which decides what to do next.
    ws.onerror = () => {};
    // A handshake to an unreachable host can hang for minutes; give up sooner and retry.
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && this.state !== ConnState.LIVE) this.drop(ConnState.RECONNECTING);
    }, this.connectTimeout);
  }

  receive(event) {
    this.lastReceived = Date.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // the protocol only sends JSON; anything else is not ours to interpret
    }
    if (typeof message.timestamp === "number") {
      this.clockOffsetMs = message.timestamp * 1000 - Date.now();
    }
    if (message.type === "connection" && message.status === "connected") {
      this.attempt = 0;
      clearTimeout(this.connectTimer);
      this.setState(ConnState.LIVE);
      this.startHeartbeat();
      this.onConnected();
      return;
    }
    this.onMessage(message);
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return; // a socket we already gave up on
    this.ws = null;
    this.stopHeartbeat();
    if (code === CLOSE_POLICY && /token/i.test(reason)) {
      // Retrying cannot help until someone enters a valid token (retryNow does that).
      this.setState(ConnState.UNAUTHORIZED);
      return;
    }
    this.scheduleRetry();
  }

  /** Abandon the current socket at once (silence, offline) and go on as if it had closed. */
  drop(nextState) {
    const ws = this.ws;
    this.ws = null;
    this.stopHeartbeat();
    if (ws !== null) {
      ws.onmessage = null;
      ws.onclose = null;
      try {
        ws.close(4000, "client gave up");
      } catch {
        // Closing a socket that is still connecting throws in some browsers; it is gone anyway.
      }
    }
    if (nextState === ConnState.OFFLINE) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.retryAt = null;
      this.setState(ConnState.OFFLINE);
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (navigator.onLine === false) {
      this.retryAt = null;
      this.setState(ConnState.OFFLINE); // the "online" event brings us back
      return;
    }
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.setState(ConnState.RECONNECTING);
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.lastReceived = Date.now();
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastReceived > this.silenceLimit) {
        this.drop(ConnState.RECONNECTING); // a half-open TCP connection never closes itself
        return;
      }
      this.send({ type: "ping" });
    }, this.pingInterval);
  }

  stopHeartbeat() {
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
