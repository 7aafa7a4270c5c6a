// The channel list: unread badges, the create form, and which channel the URL hash names.
//
// The socket joins only the open channel (joining every channel would announce the viewer as
// present everywhere and stream every channel's history and traffic to each open tab). So the
// unread counts of the other channels come from GET /api/chat/channels: refreshed when switching,
// when the tab regains focus or visibility, when channels change, and every 15 seconds while the
// tab is visible.
import { get, post } from "./api.js";
import { $, clearMessage, el, showError, showMessage } from "./ui.js";

const REFRESH_MS = 15_000;
const NAME_RE = /^[a-z0-9]+(-[a-z0-9]+)*$/;

export function channelFromHash() {
  const raw = decodeURIComponent(window.location.hash.replace(/^#/, "")).trim().toLowerCase();
  return NAME_RE.test(raw) ? raw : null;
}

export class ChannelList {
  /** `activeId()` is the open channel's id (its badge stays hidden while the tab is visible). */
  constructor({ activeId, onCreated }) {
    this.channels = [];
    this.activeId = activeId;
    this.onCreated = onCreated;
    this.loading = null;
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, REFRESH_MS);
    window.addEventListener("focus", () => this.refresh());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.refresh();
    });
    this.bindForm();
  }

  /** Reload the list (concurrent calls share one request). */
  refresh() {
    if (!this.loading) {
      this.loading = get("/api/chat/channels")
        .then((data) => {
          this.channels = data.channels || [];
          this.render();
          return this.channels;
        })
        .catch((error) => {
          if (!this.channels.length) {
            $("#channel-list").replaceChildren(el("li", { class: "muted small pad", text: error.display || "Could not load the channels." }));
          }
          return this.channels;
        })
        .finally(() => {
          this.loading = null;
          $("#channel-list").setAttribute("aria-busy", "false");
        });
    }
    return this.loading;
  }

  byName(name) {
    return this.channels.find((c) => c.name === name) || null;
  }

  defaultName() {
    return (this.channels.find((c) => c.is_default) || this.channels[0] || { name: "general" }).name;
  }

  setUnread(channelId, count) {
    const channel = this.channels.find((c) => c.id === channelId);
    if (channel && channel.unread_count !== count) {
      channel.unread_count = count;
      this.render();
    }
  }

  render() {
    const active = this.activeId();
    const visible = document.visibilityState === "visible";
    const items = this.channels.map((channel) => {
      const isActive = channel.id === active;
      const unread = isActive && visible ? 0 : channel.unread_count;
      const link = el(
        "a",
        {
          class: `channel-link${isActive ? " active" : ""}${unread ? " has-unread" : ""}`,
          href: `#${channel.name}`,
          "data-channel": channel.name,
          "aria-current": isActive ? "page" : undefined,
          title: channel.description || channel.topic || undefined,
        },
        el("span", { class: "channel-icon", "aria-hidden": "true", text: channel.visibility === "private" ? "🔒" : "#" }),
        el("span", { class: "channel-name", text: channel.name }),
        unread ? el("span", { class: "unread", "aria-label": `${unread} unread`, text: unread > 99 ? "99+" : String(unread) }) : null,
      );
      return el("li", {}, link);
    });
    $("#channel-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted small pad", text: "No channels yet." })]));
  }

  bindForm() {
    const form = $("#channel-form");
    const toggle = $("#channel-new");
    const area = $("#channel-msg");
    const name = $("#channel-name");
    const show = (open) => {
      form.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      clearMessage(area);
      if (open) name.focus();
    };
    toggle.addEventListener("click", () => show(form.hidden));
    $("#channel-cancel").addEventListener("click", () => {
      form.reset();
      show(false);
    });
    name.addEventListener("input", () => {
      const lowered = name.value.toLowerCase().replace(/[\s_]+/g, "-");
      if (lowered !== name.value) name.value = lowered;
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearMessage(area);
      const wanted = name.value.trim().replace(/^-+|-+$/g, "");
      if (!NAME_RE.test(wanted)) {
        showMessage(area, "Use lowercase letters, digits and single dashes, like “team-chat”.");
        name.focus();
        return;
      }
      const button = $("#channel-create");
      button.disabled = true;
      try {
        const channel = await post("/api/chat/channels", {
          name: wanted,
          description: $("#channel-description").value.trim(),
          visibility: $("#channel-visibility").value,
        });
        form.reset();
        show(false);
        await this.refresh();
        this.onCreated(channel);
      } catch (error) {
        showError(area, error);
      } finally {
        button.disabled = false;
      }
    });
  }
}
