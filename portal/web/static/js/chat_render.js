// Chat rendering: messages, replies, reactions, polls, link cards. Pure DOM building, no state.
//
// Everything user-supplied reaches the page as text nodes or attribute values set through the DOM;
// links are <a> elements built here, only for http(s) URLs. Buttons carry `data-action` and the
// page module handles their clicks in one delegated listener.
import { el } from "./ui.js";

export const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "🔥"];
export const EDIT_WINDOW_MS = 5 * 60 * 1000;
const GROUP_WINDOW_MS = 5 * 60 * 1000;
const AVATAR_COLORS = ["#2563eb", "#7c3aed", "#db2777", "#ea580c", "#0d9488", "#16a34a", "#4f46e5", "#b45309"];
const HEX_COLOR = /^#[0-9a-f]{6}$/i;
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** How a person is shown: anonymous > nickname > username. */
export function displayName(who) {
  if (!who) return "Unknown";
  if (who.anonymous) return "Anonymous";
  return who.nickname || who.display_name || who.username || "Unknown";
}

/** A stable key for an author (anonymous authors never group or match each other). */
export function authorKey(who) {
  if (who.anonymous || who.user_id === null || who.user_id === undefined) return null;
  return `u${who.user_id}`;
}

function colorFor(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLORS[hash % AVATAR_COLORS.length];
}

/** An avatar from the author fields: {color, emoji, initials} or the first letter of the name. */
export function avatarEl(who, size = "") {
  const name = displayName(who);
  const avatar = (!who?.anonymous && who?.avatar) || {};
  const node = el("span", { class: `avatar${size ? ` avatar-${size}` : ""}`, "aria-hidden": "true" });
  if (who?.anonymous) {
    node.textContent = "?";
    node.classList.add("avatar-anon");
    return node;
  }
  node.textContent = avatar.emoji || avatar.initials || name.slice(0, 1).toUpperCase();
  node.classList.toggle("has-emoji", Boolean(avatar.emoji));
  node.style.background = HEX_COLOR.test(avatar.color || "") ? avatar.color : colorFor(who?.username || name);
  return node;
}

// -- time --------------------------------------------------------------------------------------
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

export function messageTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el("time", { text: "" });
  const today = new Date().toDateString() === date.toDateString();
  return el("time", { datetime: iso, title: full.format(date), text: (today ? timeOnly : dayAndTime).format(date) });
}

// -- text and links ----------------------------------------------------------------------------
function safeHttpUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

/** The http(s) URLs of a text, in order, with trailing punctuation trimmed. */
export function findUrls(text) {
  const found = [];
  for (const match of String(text || "").matchAll(URL_RE)) {
    const candidate = match[0].replace(TRAILING, "");
    if (safeHttpUrl(candidate)) found.push({ index: match.index, text: candidate });
  }
  return found;
}

export function externalLink(href, text) {
  return el("a", { href, target: "_blank", rel: "noopener noreferrer", text });
}

/** Message text as text nodes, with http(s) URLs turned into links. */
export function linkified(text) {
  const parts = [];
  let at = 0;
  for (const { index, text: url } of findUrls(text)) {
    if (index > at) parts.push(document.createTextNode(text.slice(at, index)));
    parts.push(externalLink(safeHttpUrl(url).href, url));
    at = index + url.length;
  }
  if (at < text.length) parts.push(document.createTextNode(text.slice(at)));
  return parts;
}

/**
 * A link preview card. The page's CSP allows images from this origin only (img-src 'self'), so a
 * preview image is shown only when it is an http(s) URL on this origin; others are left out rather
 * than blocked by the browser.
 */
export function linkCard(preview) {
  const url = safeHttpUrl(preview.url);
  if (!url || !(preview.title || preview.description)) return null;
  const image = preview.image ? safeHttpUrl(preview.image) : null;
  const card = el("a", { class: "link-card", href: url.href, target: "_blank", rel: "noopener noreferrer" });
  const body = el(
    "span",
    { class: "link-card-body" },
    el("span", { class: "link-card-site", text: preview.site_name || url.hostname }),
    preview.title ? el("span", { class: "link-card-title", text: preview.title }) : null,
    preview.description ? el("span", { class: "link-card-desc", text: preview.description }) : null,
  );
  card.append(body);
  if (image && image.origin === window.location.origin) {
    card.append(el("img", { class: "link-card-img", src: image.href, alt: "", loading: "lazy" }));
  }
  return card;
}

// -- pieces of a message -----------------------------------------------------------------------
const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  react: [["circle", { cx: 12, cy: 12, r: 9 }], ["path", { d: "M8.5 14s1.3 2 3.5 2 3.5-2 3.5-2M9 9.5h.01M15 9.5h.01" }]],
  reply: [["path", { d: "M9 17l-5-5 5-5M4 12h11a5 5 0 0 1 5 5v2" }]],
  edit: [["path", { d: "M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z" }]],
  pin: [["path", { d: "M12 17v5M9 3h6l-1 6 4 4v2H6v-2l4-4z" }]],
  delete: [["path", { d: "M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v5M14 11v5" }]],
};

/** A small stroke icon (Feather style), built with DOM calls. */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  for (const [key, value] of Object.entries({ viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" })) {
    svg.setAttribute(key, value);
  }
  for (const [tag, attrs] of ICONS[name] || []) {
    const part = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) part.setAttribute(key, String(value));
    svg.append(part);
  }
  return svg;
}

function toolButton(action, label, iconName, extra = {}) {
  return el("button", { type: "button", class: "msg-tool", "data-action": action, "aria-label": label, title: label, ...extra }, icon(iconName));
}

function reactionsEl(message, me) {
  const entries = Object.entries(message.reactions || {}).filter(([, r]) => r && r.count > 0);
  if (!entries.length) return null;
  return el(
    "div",
    { class: "reactions" },
    entries.map(([emoji, r]) => {
      const mine = (r.users || []).includes(me.username);
      return el(
        "button",
        {
          type: "button",
          class: `reaction${mine ? " mine" : ""}`,
          "data-action": "toggle-reaction",
          "data-emoji": emoji,
          "aria-pressed": String(mine),
          title: (r.users || []).join(", "),
        },
        el("span", { class: "reaction-emoji", text: emoji }),
        el("span", { class: "reaction-count", text: String(r.count) }),
      );
    }),
  );
}

function pollEl(message, poll, view) {
  const total = Number(poll.total_votes) || 0;
  const myName = view.me.username;
  const mine = view.myVotes.get(poll.id) || new Set();
  const closes = poll.closes_at ? new Date(poll.closes_at) : null;
  const meta = [poll.allow_multiple ? "Multiple choice" : "Single choice"];
  if (poll.anonymous_votes) meta.push("anonymous votes");
  if (poll.closed) meta.push("closed");
  else if (closes) meta.push(`closes ${dayAndTime.format(closes)}`);
  const options = (poll.options || []).map((label, index) => {
    const count = Number((poll.votes || {})[String(index)]) || 0;
    const voters = (poll.voters || {})[String(index)] || [];
    // Anonymous polls do not say who voted for what: the page remembers this tab's own votes.
    const chosen = poll.anonymous_votes ? mine.has(index) : voters.includes(myName);
    const percent = total ? Math.round((count / total) * 100) : 0;
    const bar = el("span", { class: "poll-bar" });
    bar.style.width = `${percent}%`;
    return el(
      "button",
      {
        type: "button",
        class: `poll-option${chosen ? " chosen" : ""}`,
        "data-action": "vote",
        "data-index": String(index),
        "aria-pressed": String(chosen),
        disabled: poll.closed,
        title: poll.anonymous_votes ? undefined : voters.join(", ") || undefined,
      },
      bar,
      el("span", { class: "poll-label", text: label }),
      el("span", { class: "poll-count", text: `${count} · ${percent}%` }),
    );
  });
  const canClose = !poll.closed && (view.canModerate || (poll.creator_id !== null && poll.creator_id === view.me.id));
  return el(
    "div",
    { class: `poll${poll.closed ? " closed" : ""}`, "data-poll-id": String(poll.id) },
    el("div", { class: "poll-question", text: poll.question || message.message }),
    el("div", { class: "poll-meta", text: meta.join(" · ") }),
    el("div", { class: "poll-options" }, options),
    el(
      "div",
      { class: "poll-foot" },
      el("span", { class: "poll-total", text: `${poll.total_voters || 0} voter${poll.total_voters === 1 ? "" : "s"}` }),
      canClose ? el("button", { type: "button", class: "btn btn-secondary btn-sm", "data-action": "close-poll", text: "Close poll" }) : null,
    ),
  );
}

/**
 * One message as an <li>. `view`: {me: {id, username, role}, canModerate, myVotes: Map,
 * previewFor(url) -> card element or null (cached), now}.
 */
export function messageEl(message, view) {
  const own = message.user_id !== null && message.user_id !== undefined && message.user_id === view.me.id;
  const name = displayName(message);
  const li = el("li", {
    class: `message${own ? " own" : ""}${message.pinned ? " pinned" : ""}`,
    id: `msg-${message.id}`,
    "data-id": String(message.id),
    "data-author": authorKey(message) || "",
    "data-time": message.created_at,
    tabindex: "-1",
  });
  const nameButton = el(
    "button",
    {
      type: "button",
      class: "msg-author",
      "data-action": "user-menu",
      "data-user-id": message.user_id ?? "",
      "data-username": message.username,
      "aria-haspopup": "menu",
    },
    name,
  );
  const head = el(
    "div",
    { class: "msg-head" },
    nameButton,
    message.role && message.role !== "user" && !message.anonymous ? el("span", { class: `badge badge-${message.role}`, text: message.role }) : null,
    messageTime(message.created_at),
    message.edited_at ? el("span", { class: "msg-edited", title: `Edited ${full.format(new Date(message.edited_at))}`, text: "(edited)" }) : null,
    message.pinned ? el("span", { class: "msg-pin-flag", title: "Pinned" }, icon("pin"), "Pinned") : null,
  );
  const body = el("div", { class: "msg-body" }, head);
  if (message.reply_preview) {
    body.append(
      el(
        "button",
        { type: "button", class: "reply-quote", "data-action": "goto", "data-target": String(message.reply_preview.id) },
        el("span", { class: "reply-quote-name", text: message.reply_preview.username }),
        el("span", { class: "reply-quote-text", text: message.reply_preview.message }),
      ),
    );
  } else if (message.reply_to) {
    body.append(el("div", { class: "reply-quote gone", text: "Reply to a deleted message" }));
  }
  if (message.kind === "poll" && message.poll) {
    body.append(pollEl(message, message.poll, view));
  } else if (message.message) {
    body.append(el("div", { class: "msg-text" }, linkified(message.message)));
  }
  if (message.image_url && message.image_url.startsWith("/static/uploads/")) {
    body.append(
      el("a", { class: "msg-image", href: message.image_url, target: "_blank", rel: "noopener" },
        el("img", { src: message.image_url, alt: `Image from ${name}`, loading: "lazy" })),
    );
  }
  if (message.kind !== "poll") {
    const first = findUrls(message.message)[0];
    const card = first ? view.previewFor(first.text, message.id) : null;
    if (card) body.append(card);
  }
  const reactions = reactionsEl(message, view.me);
  if (reactions) body.append(reactions);

  const tools = el("div", { class: "msg-tools", role: "toolbar", "aria-label": "Message actions" });
  tools.append(toolButton("react", "Add reaction", "react"), toolButton("reply", "Reply", "reply"));
  const age = view.now - new Date(message.created_at).getTime();
  if (own && message.kind === "text" && age < EDIT_WINDOW_MS) tools.append(toolButton("edit", "Edit", "edit"));
  if (view.canModerate) {
    tools.append(message.pinned ? toolButton("unpin", "Unpin", "pin", { class: "msg-tool active" }) : toolButton("pin", "Pin", "pin"));
  }
  if (own || view.canModerate) tools.append(toolButton("delete", "Delete", "delete", { class: "msg-tool danger" }));

  li.append(el("div", { class: "msg-gutter" }, avatarEl(message), el("span", { class: "msg-gutter-time" }, messageTime(message.created_at))), body, tools);
  return li;
}

/** Mark messages that continue the previous one (same author, within 5 minutes) as compact. */
export function regroup(list) {
  let prev = null;
  for (const li of list.children) {
    const key = li.dataset.author;
    const time = new Date(li.dataset.time).getTime();
    const compact =
      prev !== null &&
      key &&
      prev.dataset.author === key &&
      time - new Date(prev.dataset.time).getTime() < GROUP_WINDOW_MS &&
      !li.querySelector(".reply-quote, .poll") &&
      !prev.querySelector(".poll");
    li.classList.toggle("compact", Boolean(compact));
    prev = li;
  }
}

/** An inline editor for a message's text. */
export function editorEl(text) {
  const area = el("textarea", { class: "msg-editor-input", rows: "2", maxlength: "4000", "aria-label": "Edit message" });
  area.value = text;
  return el(
    "div",
    { class: "msg-editor" },
    area,
    el(
      "div",
      { class: "msg-editor-actions" },
      el("span", { class: "hint", text: "Enter to save · Esc to cancel" }),
      el("button", { type: "button", class: "btn btn-secondary btn-sm", "data-action": "edit-cancel", text: "Cancel" }),
      el("button", { type: "button", class: "btn btn-sm", "data-action": "edit-save", text: "Save" }),
    ),
  );
}

export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}
