// Shared by the Connections tab and the viewer pages: icons, toasts, addresses and WebSocket URLs.
import { ApiError, get } from "./api.js";
import { el } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const ICONS = new Set([
  "terminal", "monitor", "server", "link", "globe", "home", "chart", "box", "database", "shield", "book", "video",
  "plug", "folder", "file", "key", "pin",
]);

/** An icon from the sprite; unknown names (admins may type any) fall back to the plug. */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `/static/img/remote-icons.svg#${ICONS.has(name) ? name : "plug"}`);
  svg.append(use);
  return svg;
}

/** A short-lived message in the corner; kind is "error", "success" or "info". */
export function toast(text, kind = "error", { timeout = 6000 } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const close = el("button", { type: "button", class: "btn btn-ghost btn-sm", "aria-label": "Dismiss", text: "✕" });
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { class: "toast-text", text }), close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  if (timeout) setTimeout(() => item.remove(), timeout);
}

export function errorText(error) {
  return error instanceof ApiError ? error.display : `Something went wrong: ${error.message || error}`;
}

export function address(host, port) {
  if (!host) return port ? `port ${port}` : "";
  const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return port ? `${shown}:${port}` : shown;
}

/** ws(s)://this-portal/path: the relay routes sit on the portal itself, so the session cookie goes along. */
export function wsUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

/** The viewer page of an admin-defined service (by its plugin), or null when it has none here. */
export function serviceViewerUrl(service) {
  if (!service.websocket_url) return null;
  if (["ssh", "telnet", "terminal"].includes(service.plugin)) return `/terminal/connect?service=${service.id}`;
  if (["vnc", "rdp"].includes(service.plugin)) return `/vnc/connect?service=${service.id}`;
  return null;
}

/**
 * What a viewer page opens, from its query string: one of the user's connections, an admin-defined
 * service, or (terminal, admins) the local shell. Resolves to {name, address, websocketUrl, type}.
 */
export async function resolveTarget(params, { allowLocal = false } = {}) {
  const connection = params.get("connection");
  const service = params.get("service");
  if (connection) {
    const info = await get(`/api/connections/${encodeURIComponent(connection)}/connect`);
    const c = info.connection || {};
    return {
      kind: "connection",
      id: c.id,
      name: c.name,
      type: c.type,
      address: address(c.host, c.port),
      config: c.config || {},
      websocketUrl: info.websocket_url,
      info: info.info,
    };
  }
  if (service && /^\d+$/.test(service)) {
    const s = await get(`/api/services/${service}`);
    return {
      kind: "service",
      id: s.id,
      name: s.name,
      type: s.plugin,
      address: address(s.host, s.port),
      config: s.config || {},
      websocketUrl: s.websocket_url,
      info: null,
    };
  }
  if (allowLocal && params.get("local")) {
    const shell = params.get("shell");
    const query = shell ? `?shell=${encodeURIComponent(shell)}` : "";
    return {
      kind: "local",
      id: null,
      name: shell ? `Local shell (${shell})` : "Local shell",
      type: "terminal",
      address: "the portal host",
      config: {},
      websocketUrl: `/ws/terminal/local${query}`,
      info: null,
    };
  }
  throw new ApiError(400, { error: "This page needs ?connection= (or ?service=) in its address." });
}

/** Human text for a WebSocket close: the server's reason, else what the code means. */
export function closeText(event) {
  if (event.reason) return event.reason;
  const known = {
    1000: "Closed",
    1001: "The portal is going away",
    1006: "The connection dropped",
    1008: "Refused by the portal's policy",
    1011: "The remote end failed",
    1013: "Too slow: the portal dropped this session",
    4400: "Nothing to relay to",
    4401: "Your session ended: sign in again",
    4403: "Not allowed",
    4404: "Not found",
    4429: "Too many open connections",
  };
  return known[event.code] || `Closed (code ${event.code})`;
}
