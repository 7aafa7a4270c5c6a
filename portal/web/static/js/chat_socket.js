// The /ws/chat connection: JSON frames, a keep-alive ping, and reconnection with backoff.
//
// The socket is same-origin and authenticated by the session cookie the browser sends with the
// upgrade. Frames sent while the socket is down are dropped (the caller is told with `false`):
// chat actions are not queued, since replaying a stale "delete" or "message" later would surprise.

const PING_EVERY_MS = 25_000;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

// Close codes the server uses (portal/core/ws.py, portal/accounts/deps.py).
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN_ORIGIN = 4403;
export const CLOSE_TOO_MANY = 4429;

export function chatSocketUrl(path = "/ws/chat") {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}${path}`;
}

/**
 * A self-healing chat connection.
 *
 * Callbacks: onFrame(frame), onOpen(), onStatus({state, retryInMs, code, reason}), where state is
 * "connecting", "open", "waiting" (a retry is scheduled) or "stopped" (no more retries).
 */
export class ChatConnection {
  constructor({ url = chatSocketUrl(), onFrame, onOpen, onStatus } = {}) {
    this.url = url;
    this.onFrame = onFrame || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onStatus = onStatus || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = false;
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("pagehide", () => this.stop());
    window.addEventListener("pageshow", (event) => {
      if (!event.persisted) return; // restored from the back/forward cache: connect again
      this.stopped = false;
      this.attempt = 0;
      this.connect();
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.onStatus({ state: "connecting" });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.scheduleRetry(0, String(error));
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.startPing();
      this.onStatus({ state: "open" });
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object" && frame.type !== "pong") this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      this.closed(event.code, event.reason);
    });
  }

  closed(code, reason) {
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORIZED) {
      this.stopped = true;
      this.onStatus({ state: "stopped", code, reason: reason || "Your session ended. Sign in again." });
      const here = window.location.pathname + window.location.search + window.location.hash;
      window.location.assign(`/login?next=${encodeURIComponent(here)}`);
      return;
    }
    if (code === CLOSE_FORBIDDEN_ORIGIN) {
      this.stopped = true;
      this.onStatus({ state: "stopped", code, reason: "The chat refused this page's origin." });
      return;
    }
    // Too many tabs open: wait longer before trying again.
    this.scheduleRetry(code === CLOSE_TOO_MANY ? 3 : 0, reason, code);
  }

  scheduleRetry(extraSteps = 0, reason = "", code = undefined) {
    this.attempt += 1 + extraSteps;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.attempt - 1));
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.onStatus({ state: "waiting", retryInMs: delay, code, reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect at once (the browser came back online, or the user asked). */
  retryNow() {
    if (this.stopped || this.ws) return;
    this.connect();
  }

  /** Send a frame; false when the socket is not open (nothing is queued). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopPing();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "page closed");
    }
  }
}
