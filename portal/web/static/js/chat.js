// The chat page: one socket joined to the open channel, the message list, panels and composer.
import { formatWait } from "./api.js";
import { channelFromHash, ChannelList } from "./chat_channels.js";
import { Composer } from "./chat_composer.js";
import { MessageList } from "./chat_messages.js";
import { BlockedPanel, openEmojiPicker, openNameMenu, PinnedPanel, toast, TypingLine, UsersPanel } from "./chat_panels.js";
import { EDIT_WINDOW_MS } from "./chat_render.js";
import { closeDrawers } from "./chat_layout.js";
import { ChatConnection } from "./chat_socket.js";
import { $, viewer } from "./ui.js";

const app = {
  me: { ...viewer(), display_name: "" },
  channel: null, // the channel_info of the open channel
  wanted: null, // the channel being opened
  awaitingOlder: false,
  lastMarked: 0,
  unseen: 0,
  myVotes: new Map(),
  send(frame) {
    if (app.conn.send(frame)) return true;
    toast("Not connected to the chat. Reconnecting…");
    return false;
  },
};

const messages = new MessageList(app);
const users = new UsersPanel();
const typing = new TypingLine();
const pinned = new PinnedPanel((action, id) => messageAction(action, id, null));
const blocked = new BlockedPanel(app);
const composer = new Composer(app);
const channels = new ChannelList({
  activeId: () => (app.channel ? app.channel.id : null),
  onCreated: (channel) => openChannel(channel.name),
});

// -- connection -------------------------------------------------------------------------------
app.conn = new ChatConnection({
  onOpen: () => {
    if (app.wanted || app.channel) join(app.channel ? app.channel.name : app.wanted);
  },
  onFrame: (frame) => handleFrame(frame),
  onStatus: ({ state, retryInMs, reason }) => {
    const badge = $("#conn-status");
    const labels = {
      connecting: ["Connecting…", "badge-warning"],
      open: ["Live", "badge-success"],
      waiting: [`Reconnecting in ${formatWait(Math.max(1, Math.round((retryInMs || 0) / 1000)))}…`, "badge-warning"],
      stopped: ["Offline", "badge-danger"],
    };
    const [text, kind] = labels[state] || labels.connecting;
    badge.textContent = text;
    badge.className = `conn badge ${kind}`;
    badge.title = reason || "";
    if (state === "stopped" && reason) toast(reason);
  },
});

function join(name) {
  app.wanted = name;
  app.channel = null;
  app.awaitingOlder = false;
  app.lastMarked = 0;
  messages.clear();
  typing.clear();
  users.reset([]);
  pinned.reset([], false);
  composer.reset(null);
  $("#chat-name").textContent = name;
  $("#chat-topic").textContent = "";
  $("#load-older").hidden = true;
  $("#history-start").hidden = true;
  $("#chat-notice").hidden = true;
  countUnseen(0);
  app.conn.send({ type: "join", channel: name });
  channels.render();
}

/** Open a channel: leave the old one on the socket, join the new one. */
function openChannel(name) {
  closeDrawers();
  if (`#${name}` !== window.location.hash) {
    window.location.hash = name; // the hashchange handler does the switch
    return;
  }
  const current = app.channel ? app.channel.name : app.wanted;
  if (current === name && (app.channel || !app.conn.isOpen)) return;
  if (app.channel) app.conn.send({ type: "leave", channel: app.channel.name });
  join(name);
  channels.refresh();
}

window.addEventListener("hashchange", () => openChannel(channelFromHash() || channels.defaultName()));

function isCurrent(frame) {
  return app.channel !== null && frame.channel_id === app.channel.id;
}

// -- frames -----------------------------------------------------------------------------------
const handlers = {
  connected(frame) {
    app.me.display_name = frame.display_name;
    app.me.role = frame.role || app.me.role;
  },
  channel_info(frame) {
    if (frame.name !== app.wanted) return;
    app.channel = frame;
    $("#chat-name").textContent = frame.name;
    $("#chat-topic").textContent = frame.topic || frame.description || "";
    composer.reset(frame);
    channels.render();
  },
  history(frame) {
    if (!isCurrent(frame)) return;
    if (app.awaitingOlder) {
      app.awaitingOlder = false;
      messages.prepend(frame.messages || []);
    } else {
      messages.replaceAll(frame.messages || []);
    }
    $("#load-older").hidden = !frame.has_more;
    $("#load-older").disabled = false;
    $("#history-start").hidden = Boolean(frame.has_more);
    markRead();
  },
  pinned_messages(frame) {
    if (isCurrent(frame)) pinned.reset(frame.messages || [], app.channel.can_moderate);
  },
  users(frame) {
    if (isCurrent(frame)) users.reset(frame.users || []);
  },
  user_joined(frame) {
    if (isCurrent(frame)) users.add(frame);
  },
  user_left(frame) {
    if (isCurrent(frame)) users.remove(frame);
  },
  message(frame) {
    if (!isCurrent(frame)) return;
    messages.append(frame);
    if (document.visibilityState !== "visible" && frame.user_id !== app.me.id) countUnseen(1);
    if (frame.user_id !== null) typing.stopped(frame.user_id);
    if (frame.user_id === app.me.id) composer.delivered();
    markRead();
  },
  poll_created(frame) {
    if (!isCurrent(frame.message)) return;
    messages.append({ ...frame.message, poll: frame.poll });
    markRead();
  },
  poll_updated(frame) {
    updatePoll(frame, false);
  },
  poll_closed(frame) {
    updatePoll(frame, true);
  },
  message_edited(frame) {
    if (isCurrent(frame)) messages.patch(frame.message_id, { message: frame.new_text, edited_at: frame.edited_at });
  },
  message_deleted(frame) {
    if (!isCurrent(frame)) return;
    messages.remove(frame.message_id);
    pinned.remove(frame.message_id);
  },
  reaction_update(frame) {
    if (!isCurrent(frame)) return;
    messages.patch(frame.message_id, (message) => {
      const reactions = { ...(message.reactions || {}) };
      const current = reactions[frame.emoji] || { count: 0, users: [] };
      let who = (current.users || []).filter((u) => u !== frame.username);
      if (frame.action === "add") who = [...who, frame.username];
      if (who.length) reactions[frame.emoji] = { count: who.length, users: who };
      else delete reactions[frame.emoji];
      return { ...message, reactions };
    });
  },
  message_pinned(frame) {
    if (!isCurrent(frame)) return;
    const message = messages.get(frame.message_id);
    messages.patch(frame.message_id, { pinned: true });
    pinned.add({
      id: frame.message_id,
      username: message ? (message.anonymous ? "Anonymous" : message.username) : "…",
      message: message ? message.message : "",
      pinned_by: frame.pinned_by,
      pinned_by_username: frame.pinned_by_username,
      pinned_at: frame.pinned_at,
    });
  },
  message_unpinned(frame) {
    if (!isCurrent(frame)) return;
    messages.patch(frame.message_id, { pinned: false });
    pinned.remove(frame.message_id);
  },
  typing(frame) {
    if (isCurrent(frame) && frame.user_id !== app.me.id) typing.saw(frame);
  },
  user_blocked(frame) {
    messages.removeAuthor(frame.user_id);
    typing.stopped(frame.user_id);
    toast(`You blocked ${frame.username}. Their messages are hidden.`, "success");
    blocked.refresh();
  },
  user_unblocked(frame) {
    toast(`You unblocked ${frame.username}.`, "success");
    blocked.refresh();
    if (app.channel) app.conn.send({ type: "history", channel: app.channel.name });
  },
  marked_read(frame) {
    channels.setUnread(frame.channel_id, 0);
  },
  channel_created() {
    channels.refresh();
  },
  channel_renamed(frame) {
    if (app.channel && app.channel.id === frame.channel_id) {
      app.channel.name = frame.new_name;
      app.wanted = frame.new_name;
      $("#chat-name").textContent = frame.new_name;
      composer.reset(app.channel);
      window.history.replaceState(null, "", `#${frame.new_name}`);
    }
    channels.refresh();
  },
  channel_deleted(frame) {
    channelGone(frame, `#${frame.channel} was deleted.`);
  },
  removed_from_channel(frame) {
    channelGone(frame, `You no longer have access to #${frame.channel}.`);
  },
  channel_cleared(frame) {
    if (!isCurrent(frame)) return;
    messages.clear();
    pinned.reset([], app.channel.can_moderate);
    $("#load-older").hidden = true;
    toast(`#${frame.channel} was cleared by an administrator.`, "info");
  },
  error(frame) {
    const wait = Number(frame.retry_after);
    const text = wait > 0 ? `${frame.message} Try again in ${formatWait(Math.ceil(wait))}.` : frame.message;
    toast(text || "The chat refused that.");
    if (frame.request_type === "message") composer.refused();
    if (frame.request_type === "history") {
      app.awaitingOlder = false;
      $("#load-older").disabled = false;
    }
    if (frame.request_type === "join") {
      const notice = $("#chat-notice");
      notice.textContent = `Could not open #${app.wanted}: ${frame.message}`;
      notice.className = "msg msg-error";
      notice.hidden = false;
    }
  },
};

function handleFrame(frame) {
  const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : null;
  if (handler) handler(frame);
}

function updatePoll(frame, closed) {
  const message = messages.byPoll(frame.poll_id);
  if (!message || !isCurrent(message)) return;
  const { type: _type, channel_id: _channel, poll_id: _id, ...counts } = frame;
  messages.patch(message.id, { poll: { ...message.poll, ...counts, closed: closed || message.poll.closed } });
}

function channelGone(frame, text) {
  channels.refresh();
  if (app.channel && app.channel.id === frame.channel_id) {
    toast(text, "info");
    app.channel = null;
    channels.refresh().then(() => openChannel(channels.defaultName()));
  }
}

// -- reading ----------------------------------------------------------------------------------
let markTimer = null;

/** Tell the server the newest message is read, when the channel is open and the tab visible. */
function markRead() {
  clearTimeout(markTimer);
  markTimer = setTimeout(() => {
    if (document.visibilityState !== "visible" || !app.channel) return;
    const newest = messages.newestId;
    if (newest > app.lastMarked && app.conn.send({ type: "mark_read", message_id: newest })) app.lastMarked = newest;
  }, 250);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  countUnseen(0);
  markRead();
});

/** New messages that arrived while the tab was hidden, shown in the tab's title. */
function countUnseen(add) {
  app.unseen = add ? app.unseen + add : 0;
  const name = app.channel ? app.channel.name : app.wanted;
  document.title = `${app.unseen ? `(${app.unseen}) ` : ""}#${name} · Chat · Open Relay Portal`;
}

// -- message actions --------------------------------------------------------------------------
function messageAction(action, id, button) {
  const message = messages.get(id);
  switch (action) {
    case "goto":
      if (!messages.flash(id)) toast("That message is not loaded. Load older messages to see it.", "info");
      break;
    case "react":
      openEmojiPicker(button, (emoji) => app.send({ type: "react", message_id: id, emoji }));
      break;
    case "toggle-reaction":
      app.send({ type: "react", message_id: id, emoji: button.dataset.emoji });
      break;
    case "reply":
      if (message) composer.setReply(message);
      break;
    case "edit":
      if (message) messages.openEditor(id);
      break;
    case "edit-save":
      messages.saveEdit();
      break;
    case "edit-cancel":
      messages.closeEditor();
      break;
    case "delete":
      if (window.confirm("Delete this message? This cannot be undone.")) app.send({ type: "delete", message_id: id });
      break;
    case "pin":
      app.send({ type: "pin_message", message_id: id });
      break;
    case "unpin":
      app.send({ type: "unpin_message", message_id: id });
      break;
    case "vote":
      vote(message, Number(button.dataset.index));
      break;
    case "close-poll":
      if (message && message.poll) app.send({ type: "close_poll", poll_id: message.poll.id });
      break;
    case "user-menu":
      if (message) openNameMenu(button, message, app);
      break;
    default:
      break;
  }
}

function vote(message, index) {
  if (!message || !message.poll || message.poll.closed) return;
  const poll = message.poll;
  if (!app.send({ type: "vote_poll", poll_id: poll.id, option_index: index })) return;
  const mine = app.myVotes.get(poll.id) || new Set();
  if (poll.allow_multiple) {
    if (mine.has(index)) mine.delete(index);
    else mine.add(index);
  } else {
    mine.clear();
    mine.add(index);
  }
  app.myVotes.set(poll.id, mine);
}

$("#message-list").addEventListener("click", (event) => {
  const item = event.target.closest("li.message");
  if (!item) return;
  const button = event.target.closest("[data-action]");
  if (button) {
    messageAction(button.dataset.action, Number(item.dataset.id), button);
    return;
  }
  // Touch screens have no hover: a tap on a message shows its tools.
  if (event.target.closest("a, textarea") || String(window.getSelection() || "")) return;
  for (const other of document.querySelectorAll("li.message.selected")) if (other !== item) other.classList.remove("selected");
  item.classList.toggle("selected");
});

$("#user-list").addEventListener("click", (event) => {
  const button = event.target.closest("[data-action='user-menu']");
  if (!button) return;
  const who = users.find(Number(button.dataset.userId));
  if (who) openNameMenu(button, who, app);
});

$("#load-older").addEventListener("click", (event) => {
  if (!app.channel || app.awaitingOlder) return;
  const before = messages.oldestId;
  if (!before) return;
  if (app.send({ type: "history", channel: app.channel.name, before_id: before })) {
    app.awaitingOlder = true;
    event.currentTarget.disabled = true;
  }
});

// Own messages lose their Edit button when the edit window closes.
setInterval(() => {
  const now = Date.now();
  for (const message of [...messages.byId.values()]) {
    const age = now - new Date(message.created_at).getTime();
    if (message.user_id === app.me.id && age >= EDIT_WINDOW_MS && age < EDIT_WINDOW_MS + 60_000) messages.rerender(message.id);
  }
}, 30_000);

// -- start ------------------------------------------------------------------------------------
async function start() {
  composer.reset(null);
  blocked.refresh();
  await channels.refresh();
  const wanted = channelFromHash() || channels.defaultName();
  app.wanted = wanted;
  $("#chat-name").textContent = wanted;
  if (window.location.hash !== `#${wanted}`) window.history.replaceState(null, "", `#${wanted}`);
  app.conn.connect();
}

start();
