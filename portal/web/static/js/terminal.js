// The terminal viewer: xterm.js on the JSON terminal protocol (input, resize, ping → output, pong, error)
// of /ws/user-connection/{id}, /ws/ssh/{service} or /ws/terminal/local.
import { Terminal } from "/static/vendor/@xterm/xterm/lib/xterm.mjs";
import { FitAddon } from "/static/vendor/@xterm/addon-fit/lib/addon-fit.mjs";
import { $, showMessage, clearMessage } from "./ui.js";
import { closeText, errorText, resolveTarget, wsUrl } from "./remote_common.js";

const PING_MS = 25_000;
const THEMES = {
  dark: { background: "#0b1120", foreground: "#e5e7eb", cursor: "#60a5fa", selectionBackground: "#334155" },
  light: { background: "#ffffff", foreground: "#0f172a", cursor: "#2563eb", selectionBackground: "#bfdbfe" },
};

const status = $("#viewer-status");
const message = $("#viewer-msg");
const reconnectButton = $("#term-reconnect");
const host = $("#terminal");

const term = new Terminal({
  cursorBlink: true,
  convertEol: false,
  scrollback: 5000,
  fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
  fontSize: 14,
  theme: THEMES[currentTheme()],
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(host);
// Tests (and curious users in the console) read the screen through this.
window.portalTerminal = term;

let socket = null;
let pinger = null;
let target = null;

function currentTheme() {
  return document.documentElement.getAttribute("data-theme") === "dark" ? "dark" : "light";
}

new MutationObserver(() => {
  term.options.theme = THEMES[currentTheme()];
}).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  reconnectButton.hidden = state !== "closed" || !target;
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function refit() {
  try {
    fit.fit();
  } catch {
    // the host is hidden or has no size yet; the next resize fits
  }
}

let fitFrame = 0;
function scheduleFit() {
  if (fitFrame) return;
  fitFrame = requestAnimationFrame(() => {
    fitFrame = 0;
    refit();
  });
}

new ResizeObserver(scheduleFit).observe(host);
window.addEventListener("resize", scheduleFit);
term.onResize(({ cols, rows }) => send({ type: "resize", cols, rows }));
term.onData((data) => send({ type: "input", data }));
term.onBinary((data) => send({ type: "input", data }));

// ------------------------------------------------------------------ copy and paste
async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

async function copySelection(button) {
  if (!term.hasSelection()) {
    if (button) showMessage(message, "Select text in the terminal first.", "info");
    return;
  }
  const ok = await writeClipboard(term.getSelection());
  if (button) {
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  }
}

async function pasteClipboard() {
  try {
    const text = await navigator.clipboard.readText();
    if (text) term.paste(text);
    term.focus();
  } catch {
    showMessage(message, "The browser did not allow reading the clipboard: press Ctrl+Shift+V in the terminal.", "info");
  }
}

// Selecting copies (as in most terminals); Ctrl+Shift+C copies, Ctrl+Shift+V pastes through the
// browser's own paste event, which xterm.js handles: Ctrl+C and Ctrl+V still reach the remote.
term.onSelectionChange(() => {
  if (term.hasSelection()) writeClipboard(term.getSelection());
});
term.attachCustomKeyEventHandler((event) => {
  if (!(event.ctrlKey && event.shiftKey && (event.code === "KeyC" || event.code === "KeyV"))) return true;
  if (event.type === "keydown" && event.code === "KeyC") {
    event.preventDefault();
    copySelection();
  }
  return false;
});
$("#term-copy").addEventListener("click", (event) => copySelection(event.currentTarget));
$("#term-paste").addEventListener("click", pasteClipboard);

// ------------------------------------------------------------------ the session
function onFrame(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  if (frame.type === "output" && typeof frame.data === "string") term.write(frame.data);
  else if (frame.type === "error") {
    const text = frame.message || "The remote end reported an error.";
    showMessage(message, text, "error");
    term.write(`\r\n\x1b[31m${text.replace(/[\x00-\x1f]/g, " ")}\x1b[0m\r\n`);
  }
}

function open() {
  clearMessage(message);
  setStatus("connecting", "Connecting…");
  const ws = new WebSocket(wsUrl(target.websocketUrl));
  socket = ws;
  ws.addEventListener("open", () => {
    if (socket !== ws) return;
    setStatus("connected", "Connected");
    refit();
    send({ type: "resize", cols: term.cols, rows: term.rows });
    clearInterval(pinger);
    pinger = setInterval(() => send({ type: "ping" }), PING_MS);
    term.focus();
  });
  ws.addEventListener("message", onFrame);
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    clearInterval(pinger);
    socket = null;
    const reason = closeText(event);
    setStatus("closed", `Closed: ${reason}`);
    term.write(`\r\n\x1b[2m[${reason.replace(/[\x00-\x1f]/g, " ")}]\x1b[0m\r\n`);
  });
}

reconnectButton.addEventListener("click", () => {
  term.write("\r\n");
  open();
});

async function start() {
  refit();
  const isAdmin = ["admin", "superadmin"].includes($("#viewer").dataset.userRole);
  try {
    target = await resolveTarget(new URLSearchParams(window.location.search), { allowLocal: isAdmin });
  } catch (error) {
    setStatus("closed", "Not connected");
    showMessage(message, errorText(error), "error");
    return;
  }
  $("#viewer-title").textContent = target.name;
  $("#viewer-address").textContent = target.address;
  document.title = `${target.name} · Terminal · Open Relay Portal`;
  if (!target.websocketUrl) {
    setStatus("closed", "No terminal");
    showMessage(message, target.info?.message || `${target.name} has no terminal relay.`, "error");
    return;
  }
  open();
}

start();
