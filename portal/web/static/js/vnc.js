// The VNC viewer: noVNC's RFB over the portal's binary relay (/ws/user-connection/{id} or /ws/vnc/{service}).
//
// The page opens the WebSocket itself (with the `binary` subprotocol websockify clients use) and hands
// it to RFB, so it can show the portal's close reason, which RFB does not expose.
import RFB from "/static/vendor/@novnc/novnc/core/rfb.js";
import { initLogging } from "/static/vendor/@novnc/novnc/core/util/logging.js";
import { $, clearMessage, showMessage } from "./ui.js";
import { closeText, errorText, resolveTarget, wsUrl } from "./remote_common.js";

const SCALE_KEY = "portal-vnc-scale";
const status = $("#viewer-status");
const message = $("#viewer-msg");
const screen = $("#vnc-screen");
const reconnectButton = $("#vnc-reconnect");
const cadButton = $("#vnc-cad");
const scaleButton = $("#vnc-scale");
const clipboardPanel = $("#vnc-clipboard");
const clipboardToggle = $("#vnc-clipboard-toggle");
const clipboardText = $("#vnc-clipboard-text");
const passwordDialog = $("#vnc-password-dialog");

// noVNC logs a failed connection as a console error; the page shows it in the status bar instead.
// ?debug=1 brings noVNC's own log back for troubleshooting.
initLogging(new URLSearchParams(window.location.search).has("debug") ? "debug" : "none");

let rfb = null;
let target = null;
let viewOnly = false;
let closeInfo = null;

function storedScale() {
  try {
    return window.localStorage.getItem(SCALE_KEY) !== "off";
  } catch {
    return true;
  }
}

let scale = storedScale();

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  reconnectButton.hidden = state !== "closed" || !target;
  cadButton.disabled = state !== "connected" || viewOnly;
}

function applyScale() {
  scaleButton.setAttribute("aria-pressed", String(scale));
  scaleButton.textContent = scale ? "Scale to window" : "Actual size";
  screen.classList.toggle("scrolling", !scale);
  if (rfb) rfb.scaleViewport = scale;
}

scaleButton.addEventListener("click", () => {
  scale = !scale;
  try {
    window.localStorage.setItem(SCALE_KEY, scale ? "on" : "off");
  } catch {
    // private mode: the choice lasts for this page
  }
  applyScale();
});

clipboardToggle.addEventListener("click", () => {
  clipboardPanel.hidden = !clipboardPanel.hidden;
  clipboardToggle.setAttribute("aria-expanded", String(!clipboardPanel.hidden));
  if (!clipboardPanel.hidden) clipboardText.focus();
});
$("#vnc-clipboard-send").addEventListener("click", () => {
  if (rfb && status.dataset.state === "connected") {
    rfb.clipboardPasteFrom(clipboardText.value);
    showMessage(message, "Clipboard sent to the remote desktop.", "success");
    setTimeout(() => clearMessage(message), 2000);
  } else {
    showMessage(message, "Not connected: the clipboard is sent once the desktop is connected.", "info");
  }
});
$("#vnc-clipboard-clear").addEventListener("click", () => {
  clipboardText.value = "";
});

cadButton.addEventListener("click", () => {
  if (!rfb) return;
  rfb.sendCtrlAltDel();
  rfb.focus();
});

// ------------------------------------------------------------------ credentials
function askCredentials(types) {
  const needsUser = types.includes("username");
  $("#vnc-username-field").hidden = !needsUser;
  $("#vnc-password").value = "";
  passwordDialog.showModal();
  (needsUser ? $("#vnc-username") : $("#vnc-password")).focus();
}

$("#vnc-password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const credentials = { password: $("#vnc-password").value };
  if (!$("#vnc-username-field").hidden) credentials.username = $("#vnc-username").value;
  passwordDialog.close();
  if (rfb) rfb.sendCredentials(credentials);
});
$("#vnc-password-cancel").addEventListener("click", () => {
  passwordDialog.close();
  if (rfb) rfb.disconnect();
});
// Escape closes the dialog too: without credentials the session cannot go on.
passwordDialog.addEventListener("cancel", () => {
  if (rfb) rfb.disconnect();
});

// ------------------------------------------------------------------ the session
function open() {
  clearMessage(message);
  setStatus("connecting", "Connecting…");
  closeInfo = null;
  const socket = new WebSocket(wsUrl(target.websocketUrl), ["binary"]);
  socket.addEventListener("close", (event) => {
    closeInfo = event;
  });
  const session = new RFB(screen, socket, { shared: true });
  rfb = session;
  window.portalRfb = session;
  session.viewOnly = viewOnly;
  session.resizeSession = false;
  session.background = "transparent";
  applyScale();

  session.addEventListener("connect", () => {
    if (rfb !== session) return;
    setStatus("connected", viewOnly ? "Connected (view only)" : "Connected");
    session.focus();
  });
  let securityFailure = null;
  session.addEventListener("disconnect", (event) => {
    if (rfb !== session) return;
    if (passwordDialog.open) passwordDialog.close();
    const reason = securityFailure ? "authentication failed" : closeInfo ? closeText(closeInfo) : "connection lost";
    if (securityFailure) showMessage(message, securityFailure, "error");
    else if (!event.detail.clean) showMessage(message, `The remote desktop disconnected: ${reason}`, "error");
    setStatus("closed", `Closed: ${reason}`);
  });
  session.addEventListener("credentialsrequired", (event) => askCredentials(event.detail.types || ["password"]));
  session.addEventListener("securityfailure", (event) => {
    const why = event.detail.reason || (event.detail.status === 1 ? "wrong password?" : `status ${event.detail.status}`);
    securityFailure = `Authentication failed: ${why}`;
    showMessage(message, securityFailure, "error");
  });
  session.addEventListener("clipboard", (event) => {
    clipboardText.value = event.detail.text;
  });
  session.addEventListener("desktopname", (event) => {
    if (event.detail.name) $("#viewer-address").textContent = `${target.address} · ${event.detail.name}`;
  });
}

reconnectButton.addEventListener("click", open);

async function start() {
  applyScale();
  try {
    target = await resolveTarget(new URLSearchParams(window.location.search));
  } catch (error) {
    setStatus("closed", "Not connected");
    showMessage(message, errorText(error), "error");
    return;
  }
  $("#viewer-title").textContent = target.name;
  $("#viewer-address").textContent = target.address;
  document.title = `${target.name} · Remote desktop · Open Relay Portal`;
  if (!target.websocketUrl) {
    setStatus("closed", "No relay");
    showMessage(message, `${target.name} has no desktop relay.`, "error");
    return;
  }
  viewOnly = Boolean(target.config?.view_only);
  if (!window.isSecureContext) {
    showMessage(message, "This page is not served over HTTPS: browsers withhold parts of what noVNC needs.", "info");
  }
  if (target.type === "rdp") {
    showMessage(message, "This viewer speaks VNC (RFB): an RDP server answers only if it also offers VNC.", "info");
  }
  open();
}

start();
