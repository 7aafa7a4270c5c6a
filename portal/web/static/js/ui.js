// Small DOM helpers shared by the page modules. User data only ever reaches the page as text.
import { ApiError } from "./api.js";

/** Build an element: el("td", { class: "x", text: "hi", dataset: {id: 1} }, child, "text child"). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") node.setAttribute("style", value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show a message in a message area: kind is "error", "success" or "info". */
export function showMessage(area, text, kind = "error") {
  if (!area) return;
  area.textContent = text;
  area.className = `msg msg-${kind}`;
  area.setAttribute("role", kind === "error" ? "alert" : "status");
  area.hidden = false;
}

export function clearMessage(area) {
  if (!area) return;
  area.textContent = "";
  area.hidden = true;
}

export function showError(area, error) {
  const text = error instanceof ApiError ? error.display : `Something went wrong: ${error.message || error}`;
  showMessage(area, text, "error");
  if (!(error instanceof ApiError)) console.error(error);
}

/** Run `work` with `button` disabled (and return its result); errors are shown in `area`. */
export async function withBusy(button, area, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    showError(area, error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateFormat.format(date);
}

export function timeAgo(iso) {
  const date = new Date(iso);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const steps = [
    [60, "second"],
    [3600, "minute", 60],
    [172800, "hour", 3600],
    [604800, "day", 86400],
    [2629800, "week", 604800],
    [31557600, "month", 2629800],
    [Infinity, "year", 31557600],
  ];
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds <= 0 ? "just now" : "in a moment";
  for (const [limit, unit, divisor = 1] of steps) {
    if (abs < limit) return relative.format(Math.round(seconds / divisor), unit);
  }
  return formatDate(iso);
}

/** A <time> element: relative text, absolute date in the tooltip. */
export function timeEl(iso, { relativeText = true } = {}) {
  if (!iso) return el("span", { class: "muted", text: "—" });
  return el("time", { datetime: iso, title: formatDate(iso), text: relativeText ? timeAgo(iso) : formatDate(iso) });
}

export async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    const area = el("textarea", { style: "position: fixed; opacity: 0" });
    area.value = text;
    document.body.append(area);
    area.select();
    ok = document.execCommand("copy");
    area.remove();
  }
  if (button) {
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  }
  return ok;
}

/** Render an avatar into `node` from the /api/me shape (avatar: {color, emoji, initials}). */
export function renderAvatar(node, me) {
  const avatar = me.avatar || {};
  const anonymous = Boolean(me.anonymous);
  const emoji = anonymous ? null : avatar.emoji;
  node.textContent = anonymous ? "?" : emoji || avatar.initials || (me.display_name || "?").slice(0, 1).toUpperCase();
  node.classList.toggle("has-emoji", Boolean(emoji));
  if (avatar.color && !anonymous) node.style.background = avatar.color;
  else node.style.removeProperty("background");
}

/** Reflect a fresh /api/me in the page header and anywhere else the page shows the user. */
export function updateUserEverywhere(me) {
  for (const node of document.querySelectorAll('[data-bind="display-name"]')) node.textContent = me.display_name;
  for (const node of document.querySelectorAll('[data-bind="avatar"]')) renderAvatar(node, me);
}

/** The signed-in viewer, from data attributes the layout renders. */
export function viewer() {
  const main = document.getElementById("main");
  return {
    id: Number(main?.dataset.userId || 0),
    role: main?.dataset.userRole || "user",
    username: main?.dataset.username || "",
  };
}

export const ROLES = ["user", "moderator", "admin", "superadmin"];
export const roleRank = (role) => ROLES.indexOf(role);
