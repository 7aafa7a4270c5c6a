// The composer: text, replies, image attachments (uploaded on send), typing signals, and the poll form.
import { ApiError, CSRF_COOKIE, getCookie } from "./api.js";
import { displayName } from "./chat_render.js";
import { errorText, toast } from "./chat_panels.js";
import { $, clearMessage, el, showMessage } from "./ui.js";

const TYPING_EVERY_MS = 2_000;
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const MAX_OPTIONS = 10;
const MIN_OPTIONS = 2;

/** POST /api/chat/upload: multipart, with the CSRF header the cookie session needs. */
export async function uploadImage(file) {
  const body = new FormData();
  body.append("image", file, file.name || "image");
  const headers = { Accept: "application/json" };
  const token = getCookie(CSRF_COOKIE);
  if (token) headers["X-CSRF-Token"] = token;
  let response;
  try {
    response = await fetch("/api/chat/upload", { method: "POST", body, headers, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, { error: "Could not reach the portal to upload the image." });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export class Composer {
  constructor(app) {
    this.app = app;
    this.form = $("#composer");
    this.input = $("#message-input");
    this.replyTo = null;
    this.file = null;
    this.previewUrl = null;
    this.pending = null;
    this.typingSentAt = 0;
    this.busy = false;
    this.bind();
    this.bindPoll();
  }

  bind() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Escape" && this.replyTo) {
        this.setReply(null);
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      const now = Date.now();
      if (this.input.value.trim() && this.app.channel && now - this.typingSentAt > TYPING_EVERY_MS) {
        this.typingSentAt = now;
        this.app.conn.send({ type: "typing", channel: this.app.channel.name });
      }
    });
    $("#reply-cancel").addEventListener("click", () => this.setReply(null));
    $("#image-button").addEventListener("click", () => $("#image-input").click());
    $("#image-input").addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      event.target.value = "";
      if (file) this.setImage(file);
    });
    $("#image-remove").addEventListener("click", () => this.setImage(null));
  }

  autosize() {
    this.input.style.removeProperty("height");
    if (this.input.value) this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 180)}px`;
  }

  /** Open channel changed (or its permissions): reset what belongs to the old one. */
  reset(channel) {
    this.setReply(null);
    this.pending = null;
    const canSend = Boolean(channel && channel.can_send);
    this.input.disabled = !canSend;
    for (const id of ["#send-button", "#image-button", "#poll-button"]) $(id).disabled = !canSend;
    this.input.placeholder = !channel ? "Connecting…" : canSend ? `Message #${channel.name}` : "This channel is read-only";
  }

  setReply(message) {
    this.replyTo = message ? message.id : null;
    $("#reply-bar").hidden = !message;
    if (message) {
      $("#reply-name").textContent = displayName(message);
      $("#reply-text").textContent = message.kind === "poll" ? `Poll: ${message.message}` : message.message || "(image)";
      this.input.focus();
    }
  }

  setImage(file) {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
    this.file = null;
    if (file) {
      if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) {
        toast("Choose a PNG, JPEG, GIF or WebP image.");
        file = null;
      } else if (file.size > MAX_IMAGE_BYTES) {
        toast("Images may be at most 5 MB.");
        file = null;
      }
    }
    if (file) {
      this.file = file;
      this.previewUrl = URL.createObjectURL(file);
      $("#image-preview-img").src = this.previewUrl;
      $("#image-preview-name").textContent = file.name;
    } else {
      $("#image-preview-img").removeAttribute("src");
    }
    $("#image-preview").hidden = !file;
  }

  async submit() {
    const channel = this.app.channel;
    const text = this.input.value;
    if (this.busy || !channel || (!text.trim() && !this.file)) return;
    if (!this.app.conn.isOpen) {
      toast("Not connected: the message was not sent.");
      return;
    }
    const frame = { type: "message", channel: channel.name, message: text };
    if (this.replyTo) frame.reply_to = this.replyTo;
    this.busy = true;
    $("#send-button").disabled = true;
    try {
      if (this.file) {
        try {
          frame.image_url = (await uploadImage(this.file)).url;
        } catch (error) {
          toast(errorText(error));
          return;
        }
      }
      if (!this.app.conn.send(frame)) {
        toast("Not connected: the message was not sent.");
        return;
      }
      this.pending = { text, replyTo: this.replyTo };
      this.input.value = "";
      this.autosize();
      this.setReply(null);
      this.setImage(null);
      this.typingSentAt = 0;
    } finally {
      this.busy = false;
      $("#send-button").disabled = !(this.app.channel && this.app.channel.can_send);
      this.input.focus();
    }
  }

  /** Our message came back: it was delivered. */
  delivered() {
    this.pending = null;
  }

  /** The server refused our message (rate limit, mute…): give the text back if the box is empty. */
  refused() {
    if (this.pending && !this.input.value) {
      this.input.value = this.pending.text;
      this.autosize();
    }
    this.pending = null;
  }

  // -- polls ------------------------------------------------------------------------------------
  bindPoll() {
    const dialog = $("#poll-dialog");
    const list = $("#poll-options");
    const addOption = (value = "") => {
      if (list.children.length >= MAX_OPTIONS) return;
      const index = list.children.length + 1;
      const input = el("input", { type: "text", maxlength: "200", "aria-label": `Option ${index}`, placeholder: `Option ${index}`, class: "poll-option-input", autocomplete: "off" });
      input.value = value;
      const remove = el("button", { type: "button", class: "btn btn-ghost btn-sm", "aria-label": `Remove option ${index}`, text: "✕" });
      const item = el("li", {}, input, remove);
      remove.addEventListener("click", () => {
        if (list.children.length > MIN_OPTIONS) item.remove();
        this.renumber();
      });
      list.append(item);
      this.renumber();
      return input;
    };
    $("#poll-button").addEventListener("click", () => {
      $("#poll-form").reset();
      list.replaceChildren();
      addOption();
      addOption();
      clearMessage($("#poll-msg"));
      dialog.showModal();
      $("#poll-question").focus();
    });
    $("#poll-add-option").addEventListener("click", () => addOption()?.focus());
    $("#poll-cancel").addEventListener("click", () => dialog.close());
    $("#poll-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.createPoll(dialog);
    });
  }

  renumber() {
    const items = [...$("#poll-options").children];
    items.forEach((item, i) => {
      const input = item.querySelector("input");
      input.setAttribute("aria-label", `Option ${i + 1}`);
      input.placeholder = `Option ${i + 1}`;
      item.querySelector("button").hidden = items.length <= MIN_OPTIONS;
    });
    $("#poll-add-option").hidden = items.length >= MAX_OPTIONS;
  }

  createPoll(dialog) {
    const area = $("#poll-msg");
    const question = $("#poll-question").value.trim();
    const options = [...$("#poll-options").querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
    const duration = $("#poll-duration").value.trim();
    if (!question) return showMessage(area, "Ask a question.");
    if (options.length < MIN_OPTIONS) return showMessage(area, "Give at least two options.");
    if (new Set(options.map((o) => o.toLowerCase())).size !== options.length) return showMessage(area, "Options must be different.");
    const minutes = duration ? Number(duration) : null;
    if (minutes !== null && !(Number.isInteger(minutes) && minutes >= 1 && minutes <= 43200)) {
      return showMessage(area, "The duration is a whole number of minutes, up to 30 days.");
    }
    if (!this.app.channel) return showMessage(area, "Not in a channel yet.");
    const frame = {
      type: "create_poll",
      channel: this.app.channel.name,
      question,
      options,
      allow_multiple: $("#poll-multiple").checked,
      anonymous_votes: $("#poll-anonymous").checked,
    };
    if (minutes !== null) frame.duration = minutes;
    if (!this.app.conn.send(frame)) return showMessage(area, "Not connected: try again in a moment.");
    dialog.close();
    return undefined;
  }
}
