// The chat's side panels and popovers: toasts, online users, pinned messages, blocked users,
// the typing line, the reaction picker and the menu on a person's name.
import { ApiError, get, post } from "./api.js";
import { QUICK_EMOJI, avatarEl, displayName, typingText } from "./chat_render.js";
import { $, el, roleRank } from "./ui.js";

const TYPING_TTL_MS = 4_000;

export function toast(text, kind = "error") {
  const box = $("#toasts");
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { text }),
    el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", text: "✕" }));
  item.querySelector("button").addEventListener("click", () => item.remove());
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? 8_000 : 5_000);
}

export function errorText(error) {
  return error instanceof ApiError ? error.display : `Something went wrong: ${error.message || error}`;
}

// -- popovers ---------------------------------------------------------------------------------
let openPopover = null;

export function closePopover() {
  if (!openPopover) return;
  openPopover.node.hidden = true;
  openPopover.node.replaceChildren();
  const anchor = openPopover.anchor;
  openPopover = null;
  anchor?.setAttribute("aria-expanded", "false");
}

function showPopover(node, anchor) {
  closePopover();
  node.hidden = false;
  anchor.setAttribute("aria-expanded", "true");
  openPopover = { node, anchor };
  const box = anchor.getBoundingClientRect();
  const width = node.offsetWidth;
  const height = node.offsetHeight;
  const left = Math.max(8, Math.min(box.left, window.innerWidth - width - 8));
  const below = box.bottom + 6;
  const top = below + height > window.innerHeight - 8 ? Math.max(8, box.top - height - 6) : below;
  node.style.left = `${left}px`;
  node.style.top = `${top}px`;
  node.querySelector("button")?.focus();
}

document.addEventListener("click", (event) => {
  if (openPopover && !openPopover.node.contains(event.target) && !openPopover.anchor.contains(event.target)) closePopover();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && openPopover) {
    const anchor = openPopover.anchor;
    closePopover();
    anchor.focus();
  }
});
window.addEventListener("resize", closePopover);

/** The reaction picker under `anchor`; `pick(emoji)` is called with the chosen one. */
export function openEmojiPicker(anchor, pick) {
  const node = $("#emoji-picker");
  node.replaceChildren(
    ...QUICK_EMOJI.map((emoji) => {
      const button = el("button", { type: "button", class: "emoji-choice", role: "menuitem", "aria-label": `React with ${emoji}`, text: emoji });
      button.addEventListener("click", () => {
        closePopover();
        pick(emoji);
      });
      return button;
    }),
  );
  showPopover(node, anchor);
}

/**
 * The menu on a person's name. `who`: {user_id, username, nickname?, anonymous?};
 * `app` gives the viewer, the channel and the socket.
 */
export function openNameMenu(anchor, who, app) {
  const node = $("#name-menu");
  const name = displayName(who);
  const items = [el("div", { class: "menu-head" }, el("strong", { text: name }), who.anonymous ? null : el("span", { class: "muted small", text: ` @${who.username}` }))];
  const item = (label, handler, danger = false) => {
    const button = el("button", { type: "button", role: "menuitem", class: danger ? "danger" : "", text: label });
    button.addEventListener("click", () => {
      closePopover();
      handler();
    });
    items.push(button);
  };
  const userId = who.user_id;
  const isMe = userId === app.me.id;
  if (userId && !isMe) {
    item(`Block ${name}`, () => {
      if (window.confirm(`Block ${name}? You will no longer see their messages.`)) app.send({ type: "block_user", user_id: userId });
    }, true);
    const channel = app.channel;
    if (roleRank(app.me.role) >= roleRank("moderator") && channel) {
      items.push(el("hr"));
      item("Time out for 10 minutes", () => sanction(app, who, { kind: "timeout", duration_minutes: 10 }, `${name} is timed out for 10 minutes.`));
      item(`Mute in #${channel.name} for 1 hour`, () => sanction(app, who, { kind: "mute", channel_id: channel.id, duration_minutes: 60 }, `${name} is muted in #${channel.name} for 1 hour.`));
      item(`Ban from #${channel.name}`, () => {
        if (window.confirm(`Ban ${name} from #${channel.name}?`)) {
          sanction(app, who, { kind: "ban", channel_id: channel.id }, `${name} is banned from #${channel.name}.`);
        }
      }, true);
    }
  } else {
    const note = isMe ? "This is you." : who.anonymous ? "Anonymous users cannot be blocked." : "This account no longer exists.";
    items.push(el("div", { class: "menu-note muted small", text: note }));
  }
  node.replaceChildren(...items);
  showPopover(node, anchor);
}

async function sanction(app, who, fields, success) {
  try {
    await post("/api/chat/moderation/sanctions", { user_id: who.user_id, reason: "", ...fields });
    toast(success, "success");
  } catch (error) {
    toast(errorText(error));
  }
}

// -- online users -----------------------------------------------------------------------------
export class UsersPanel {
  constructor() {
    this.users = new Map();
    this.anonymous = 0;
  }

  key(user) {
    return user.user_id === null || user.user_id === undefined ? null : user.user_id;
  }

  reset(list = []) {
    this.users.clear();
    this.anonymous = 0;
    for (const user of list) this.add(user, false);
    this.render();
  }

  add(user, render = true) {
    const key = this.key(user);
    if (key === null || user.anonymous) this.anonymous += 1;
    else this.users.set(key, { ...this.users.get(key), ...user });
    if (render) this.render();
  }

  remove(user) {
    const key = this.key(user);
    if (key === null || user.anonymous) this.anonymous = Math.max(0, this.anonymous - 1);
    else this.users.delete(key);
    this.render();
  }

  render() {
    const list = $("#user-list");
    const users = [...this.users.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
    const items = users.map((user) =>
      el(
        "li",
        { "data-user-id": String(user.user_id) },
        el(
          "button",
          { type: "button", class: "user-chip", "data-action": "user-menu", "data-user-id": String(user.user_id), "data-username": user.username, "aria-haspopup": "menu" },
          avatarEl(user),
          el("span", { class: "user-chip-name", text: displayName(user) }),
          user.role && user.role !== "user" ? el("span", { class: `badge badge-${user.role}`, text: user.role }) : null,
        ),
      ),
    );
    if (this.anonymous) {
      items.push(el("li", {}, el("span", { class: "user-chip" }, avatarEl({ anonymous: true }), el("span", { class: "user-chip-name muted", text: `Anonymous${this.anonymous > 1 ? ` ×${this.anonymous}` : ""}` }))));
    }
    if (!items.length) items.push(el("li", { class: "muted small pad", text: "Nobody else is here." }));
    list.replaceChildren(...items);
    const total = users.length + this.anonymous;
    $("#online-count").textContent = String(total);
    $("#users-total").textContent = `${total} here`;
  }

  find(userId) {
    return this.users.get(userId);
  }
}

// -- typing -----------------------------------------------------------------------------------
export class TypingLine {
  constructor() {
    this.who = new Map();
    this.timer = null;
  }

  saw(frame) {
    const key = frame.user_id ?? `anon:${frame.display_name}`;
    this.who.set(key, { name: frame.display_name || displayName(frame), until: Date.now() + TYPING_TTL_MS });
    this.render();
  }

  stopped(userId) {
    if (this.who.delete(userId)) this.render();
  }

  clear() {
    this.who.clear();
    this.render();
  }

  render() {
    const now = Date.now();
    for (const [key, entry] of this.who) if (entry.until <= now) this.who.delete(key);
    $("#typing").textContent = typingText([...this.who.values()].map((e) => e.name));
    clearTimeout(this.timer);
    if (this.who.size) {
      const next = Math.min(...[...this.who.values()].map((e) => e.until)) - now;
      this.timer = setTimeout(() => this.render(), Math.max(100, next));
    }
  }
}

// -- pinned messages --------------------------------------------------------------------------
export class PinnedPanel {
  constructor(onAction) {
    this.items = [];
    this.canModerate = false;
    this.onAction = onAction;
    $("#pinned-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.onAction(button.dataset.action, Number(button.dataset.id));
    });
  }

  reset(items, canModerate) {
    this.items = [...items];
    this.canModerate = canModerate;
    this.render();
  }

  add(item) {
    this.items = this.items.filter((p) => p.id !== item.id);
    this.items.push(item);
    this.render();
  }

  remove(id) {
    this.items = this.items.filter((p) => p.id !== id);
    this.render();
  }

  render() {
    $("#pinned-count").textContent = String(this.items.length);
    const list = $("#pinned-list");
    if (!this.items.length) {
      list.replaceChildren(el("li", { class: "muted small", text: "No pinned messages in this channel." }));
      return;
    }
    list.replaceChildren(
      ...this.items.map((pin) =>
        el(
          "li",
          { class: "pinned-item", "data-id": String(pin.id) },
          el(
            "button",
            { type: "button", class: "pinned-jump", "data-action": "goto", "data-id": String(pin.id) },
            el("strong", { text: pin.username }),
            el("span", { class: "pinned-text", text: pin.message || "(image)" }),
            el("span", { class: "muted small", text: pin.pinned_by_username ? `pinned by ${pin.pinned_by_username}` : "" }),
          ),
          this.canModerate ? el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-action": "unpin", "data-id": String(pin.id), text: "Unpin" }) : null,
        ),
      ),
    );
  }
}

// -- blocked users ----------------------------------------------------------------------------
export class BlockedPanel {
  constructor(app) {
    this.app = app;
    $("#blocked-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-unblock]");
      if (button) this.app.send({ type: "unblock_user", user_id: Number(button.dataset.unblock) });
    });
  }

  async refresh() {
    let users = [];
    try {
      users = (await get("/api/blocks")).blocked_users || [];
    } catch (error) {
      toast(errorText(error));
      return;
    }
    $("#blocked-count").textContent = String(users.length);
    $("#blocked-list").replaceChildren(
      ...(users.length
        ? users.map((user) =>
            el("li", {}, el("span", { class: "blocked-name", text: user.username }),
              el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-unblock": String(user.id), text: "Unblock" })),
          )
        : [el("li", { class: "muted small", text: "You have not blocked anyone." })]),
    );
  }
}
