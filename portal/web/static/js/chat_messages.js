// The message list of the open channel: its state (by id), rendering, scrolling and link previews.
import { get } from "./api.js";
import { editorEl, linkCard, messageEl, regroup } from "./chat_render.js";
import { $ } from "./ui.js";

const NEAR_BOTTOM_PX = 80;

export class MessageList {
  constructor(app) {
    this.app = app;
    this.list = $("#message-list");
    this.scroller = $("#message-scroll");
    this.byId = new Map();
    this.previews = new Map();
    this.editing = null;
    this.stuck = true;
    this.scroller.addEventListener("scroll", () => {
      this.stuck = this.nearBottom();
    }, { passive: true });
    // Images and link cards grow messages after they are shown: keep the view pinned to the end.
    this.list.addEventListener("load", () => {
      if (this.stuck) this.toBottom();
    }, true);
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stuck = true;
  }

  view() {
    const app = this.app;
    return {
      me: app.me,
      canModerate: Boolean(app.channel && app.channel.can_moderate),
      myVotes: app.myVotes,
      now: Date.now(),
      previewFor: (url, id) => this.previewFor(url, id),
    };
  }

  get newestId() {
    const last = this.list.lastElementChild;
    return last ? Number(last.dataset.id) : 0;
  }

  get oldestId() {
    const first = this.list.firstElementChild;
    return first ? Number(first.dataset.id) : 0;
  }

  get(id) {
    return this.byId.get(id) || null;
  }

  clear() {
    this.byId.clear();
    this.editing = null;
    this.list.replaceChildren();
  }

  /** A fresh history (joining, or after unblocking someone). */
  replaceAll(messages) {
    this.clear();
    const view = this.view();
    for (const message of messages) {
      this.byId.set(message.id, message);
      this.list.append(messageEl(message, view));
    }
    regroup(this.list);
    this.toBottom();
  }

  /** Older messages above the current ones, keeping what the reader looks at in place. */
  prepend(messages) {
    const before = this.scroller.scrollHeight;
    const top = this.scroller.scrollTop;
    const view = this.view();
    const fresh = messages.filter((m) => !this.byId.has(m.id));
    const nodes = fresh.map((m) => {
      this.byId.set(m.id, m);
      return messageEl(m, view);
    });
    this.list.prepend(...nodes);
    regroup(this.list);
    this.scroller.scrollTop = top + (this.scroller.scrollHeight - before);
  }

  /** A new message at the end (ours always scrolls into view). */
  append(message) {
    if (this.byId.has(message.id)) return this.update(message);
    const stick = this.stuck || message.user_id === this.app.me.id;
    this.byId.set(message.id, message);
    this.list.append(messageEl(message, this.view()));
    regroup(this.list);
    if (stick) this.toBottom();
    return undefined;
  }

  update(message) {
    this.byId.set(message.id, message);
    this.rerender(message.id);
  }

  /** Change a message's fields and redraw it; false when it is not loaded. */
  patch(id, change) {
    const message = this.byId.get(id);
    if (!message) return false;
    const next = typeof change === "function" ? change(message) : { ...message, ...change };
    this.byId.set(id, next);
    this.rerender(id);
    return true;
  }

  rerender(id) {
    const node = document.getElementById(`msg-${id}`);
    const message = this.byId.get(id);
    if (!node || !message) return;
    const stick = this.stuck;
    const fresh = messageEl(message, this.view());
    for (const kept of ["compact", "selected"]) if (node.classList.contains(kept)) fresh.classList.add(kept);
    node.replaceWith(fresh);
    if (this.editing && this.editing.id === id) this.openEditor(id, this.editing.input.value);
    if (stick) this.toBottom();
  }

  /** Redraw every message (permissions changed, or an edit window expired). */
  rerenderAll() {
    for (const id of this.byId.keys()) this.rerender(id);
    regroup(this.list);
  }

  remove(id) {
    this.byId.delete(id);
    document.getElementById(`msg-${id}`)?.remove();
    if (this.editing && this.editing.id === id) this.editing = null;
    regroup(this.list);
  }

  removeAuthor(userId) {
    for (const [id, message] of [...this.byId]) if (message.user_id === userId) this.remove(id);
  }

  /** Find the message with this poll. */
  byPoll(pollId) {
    for (const message of this.byId.values()) if (message.poll && message.poll.id === pollId) return message;
    return null;
  }

  // -- inline editing ---------------------------------------------------------------------------
  openEditor(id, text) {
    const node = document.getElementById(`msg-${id}`);
    const message = this.byId.get(id);
    if (!node || !message) return;
    const editor = editorEl(text ?? message.message);
    const body = node.querySelector(".msg-body");
    body.querySelector(".msg-text")?.replaceWith(editor);
    if (!editor.isConnected) body.querySelector(".msg-head").after(editor);
    node.classList.add("editing");
    const input = editor.querySelector("textarea");
    this.editing = { id, input };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.saveEdit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        this.closeEditor();
      }
    });
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  saveEdit() {
    if (!this.editing) return;
    const { id, input } = this.editing;
    const text = input.value;
    const message = this.byId.get(id);
    if (!text.trim() || (message && text === message.message)) {
      this.closeEditor();
      return;
    }
    if (this.app.send({ type: "edit_message", message_id: id, message: text })) this.closeEditor();
  }

  closeEditor() {
    if (!this.editing) return;
    const { id } = this.editing;
    this.editing = null;
    this.rerender(id);
    regroup(this.list);
  }

  // -- link previews ----------------------------------------------------------------------------
  /** The card for `url` if it is known; otherwise start fetching it and redraw `id` when it arrives. */
  previewFor(url, id) {
    let entry = this.previews.get(url);
    if (entry && entry.done) return entry.data ? linkCard(entry.data) : null;
    if (!entry) {
      entry = { done: false, data: null, waiting: new Set() };
      this.previews.set(url, entry);
      get(`/api/chat/link-preview?url=${encodeURIComponent(url)}`, { redirectOn401: false })
        .then((data) => {
          entry.data = data;
        })
        .catch(() => {
          entry.data = null;
        })
        .finally(() => {
          entry.done = true;
          const waiting = [...entry.waiting];
          entry.waiting.clear();
          if (entry.data) for (const mid of waiting) this.rerender(mid);
        });
    }
    entry.waiting.add(id);
    return null;
  }

  /** Briefly highlight a message and scroll to it; false when it is not loaded. */
  flash(id) {
    const node = document.getElementById(`msg-${id}`);
    if (!node) return false;
    node.scrollIntoView({ block: "center", behavior: "smooth" });
    node.classList.remove("flash");
    void node.offsetWidth;
    node.classList.add("flash");
    node.focus({ preventScroll: true });
    return true;
  }
}
