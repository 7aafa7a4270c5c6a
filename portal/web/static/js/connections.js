// The Connections tab: the user's connections (pinned first), quick-add presets, services and SSH keys.
import { del, get, post } from "./api.js";
import { $, clearMessage, el, showError, showMessage } from "./ui.js";
import { ConnectionForm, describeConnection } from "./connection_form.js";
import { address, errorText, icon, serviceViewerUrl, toast } from "./remote_common.js";
import { SshKeys } from "./ssh_keys.js";

const HEALTH_CONCURRENCY = 4;
const state = { types: {}, connections: [], shells: null };

const keys = new SshKeys({ onChange: () => {} });
const form = new ConnectionForm({
  dialog: $("#conn-dialog"),
  sshKeys: () => keys.keys,
  shells: () => state.shells,
  onSaved: (saved, edited) => {
    toast(edited ? `Saved “${saved.name}”.` : `Added “${saved.name}”.`, "success");
    loadConnections();
  },
});

function typeOf(connection) {
  return state.types[connection.type] || null;
}

// ------------------------------------------------------------------ connections
function connectionItem(connection) {
  const type = typeOf(connection);
  const actions = el(
    "div",
    { class: "conn-actions" },
    el("button", {
      type: "button",
      class: `btn btn-ghost btn-sm pin-btn${connection.is_pinned ? " pinned" : ""}`,
      "aria-pressed": String(connection.is_pinned),
      title: connection.is_pinned ? "Pinned to the top: press to unpin" : "Pin to the top",
      onclick: (event) => togglePin(connection, event.currentTarget),
    }, icon("pin", "icon icon-sm"), el("span", { text: "Pin" })),
    el("button", { type: "button", class: "btn btn-sm", text: "Connect", onclick: (event) => connect(connection, event.currentTarget) }),
    connection.type === "ssh"
      ? el("a", { class: "btn btn-secondary btn-sm", href: `/sftp?connection=${encodeURIComponent(connection.id)}`, text: "Files" })
      : null,
    el("button", { type: "button", class: "btn btn-secondary btn-sm", text: "Edit", onclick: () => edit(connection) }),
    connection.type === "ssh"
      ? el("button", {
        type: "button",
        class: "btn btn-ghost btn-sm",
        text: "Forget host key",
        title: "After the server was reinstalled: trust the key it shows next time",
        onclick: (event) => forgetHostKey(connection, event.currentTarget),
      })
      : null,
    el("button", { type: "button", class: "btn btn-danger btn-sm", text: "Delete", onclick: (event) => remove(connection, event.currentTarget) }),
  );
  return el(
    "li",
    { class: "conn-item", dataset: { id: connection.id, type: connection.type, pinned: String(connection.is_pinned) } },
    el("span", { class: "conn-icon" }, icon(type ? type.icon : connection.icon)),
    el(
      "div",
      { class: "conn-body" },
      el("div", { class: "conn-name" }, el("span", { text: connection.name }),
        connection.is_pinned ? el("span", { class: "badge badge-accent", text: "pinned" }) : null),
      el("div", { class: "conn-meta", text: describeConnection(connection, type) }),
    ),
    actions,
  );
}

async function loadConnections() {
  const list = $("#connection-list");
  try {
    const data = await get("/api/connections");
    state.connections = data.connections || [];
    $("#connections-count").textContent = state.connections.length ? `${state.connections.length} total` : "";
    list.replaceChildren(
      ...(state.connections.length
        ? state.connections.map(connectionItem)
        : [el("li", { class: "empty", text: "No connections yet. Pick a type under Quick add to create one." })]),
    );
  } catch (error) {
    list.replaceChildren();
    showError($("#connections-msg"), error);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

async function togglePin(connection, button) {
  button.disabled = true;
  try {
    const result = await post(`/api/connections/${encodeURIComponent(connection.id)}/pin`);
    toast(result.is_pinned ? `Pinned “${connection.name}”.` : `Unpinned “${connection.name}”.`, "success", { timeout: 2500 });
    await loadConnections();
  } catch (error) {
    button.disabled = false;
    toast(errorText(error));
  }
}

async function connect(connection, button) {
  button.disabled = true;
  try {
    const info = await get(`/api/connections/${encodeURIComponent(connection.id)}/connect`);
    if (info.viewer_url) {
      const opened = window.open(info.viewer_url, "_blank");
      if (opened) opened.opener = null;
      else window.location.assign(info.viewer_url);
      return;
    }
    const where = address(info.connection?.host, info.connection?.port);
    const message = info.info?.message || `${connection.name} has no web viewer.`;
    toast(where && !message.includes(where) ? `${message} (${where})` : message, "info", { timeout: 12000 });
  } catch (error) {
    toast(errorText(error));
  } finally {
    button.disabled = false;
  }
}

function edit(connection) {
  const type = typeOf(connection);
  if (!type) {
    toast(`The type “${connection.type}” is not available to you.`);
    return;
  }
  form.open(type, connection);
}

async function forgetHostKey(connection, button) {
  const url = `/api/connections/${encodeURIComponent(connection.id)}/host-key`;
  const area = $("#connections-msg");
  clearMessage(area);
  button.disabled = true;
  try {
    const pinned = await get(url);
    if (!pinned.pinned) {
      toast(`No host key is pinned for “${connection.name}” yet: the first connection pins it.`, "info");
      return;
    }
    if (!window.confirm(`Forget the pinned host key ${pinned.fingerprint} of “${connection.name}”? ` +
      "Only do this when you know the server's key changed (for example after a reinstall).")) return;
    await del(url);
    toast(`Forgot the host key ${pinned.fingerprint}: the next connection pins the key the server shows.`, "success");
  } catch (error) {
    showError(area, error);
  } finally {
    button.disabled = false;
  }
}

async function remove(connection, button) {
  const area = $("#connections-msg");
  clearMessage(area);
  if (!window.confirm(`Delete the connection “${connection.name}”? Its stored passwords and keys go with it.`)) return;
  button.disabled = true;
  try {
    await del(`/api/connections/${encodeURIComponent(connection.id)}`);
    showMessage(area, `Connection “${connection.name}” deleted.`, "success");
    await loadConnections();
  } catch (error) {
    button.disabled = false;
    showError(area, error);
  }
}

// ------------------------------------------------------------------ quick add
function typeTile(key, type) {
  const port = type.presets?.port ?? type.default_port;
  return el(
    "button",
    { type: "button", class: "type-tile", dataset: { type: key },
      title: [type.description || type.name, port ? `Port ${port}` : ""].filter(Boolean).join(" · "),
      onclick: () => form.open(type) },
    el("span", { class: "conn-icon" }, icon(type.icon)),
    el("span", { class: "type-name", text: type.name }),
  );
}

async function loadTypes() {
  const box = $("#type-groups");
  try {
    const data = await get("/api/connections/types");
    state.types = {};
    const groups = new Map();
    for (const [key, type] of Object.entries(data.types || {})) {
      state.types[key] = { ...type, key };
      const category = type.category || "Other";
      if (!groups.has(category)) groups.set(category, []);
      groups.get(category).push(typeTile(key, state.types[key]));
    }
    box.replaceChildren(
      ...[...groups].map(([category, tiles]) =>
        el("section", { class: "type-group", "aria-label": category }, el("h3", { text: category }),
          el("div", { class: "type-tiles" }, ...tiles))),
    );
  } catch (error) {
    box.replaceChildren();
    showError($("#types-msg"), error);
  } finally {
    box.setAttribute("aria-busy", "false");
  }
}

// ------------------------------------------------------------------ services
function serviceItem(service) {
  const dot = el("span", { class: "health-dot", dataset: { health: "checking" }, role: "img", "aria-label": "Checking…", title: "Checking…" });
  const viewer = serviceViewerUrl(service);
  const meta = [service.category, service.description].filter(Boolean).join(" · ");
  const item = el(
    "li",
    { class: "conn-item", dataset: { serviceId: service.id, plugin: service.plugin } },
    el("span", { class: "conn-icon" }, icon(service.icon || state.types[service.plugin]?.icon)),
    el(
      "div",
      { class: "conn-body" },
      el("div", { class: "conn-name" }, dot, el("span", { text: service.name }), service.enabled ? null : el("span", { class: "badge", text: "disabled" })),
      el("div", { class: "conn-meta", text: meta || state.types[service.plugin]?.name || service.plugin }),
    ),
    el(
      "div",
      { class: "conn-actions" },
      viewer && service.enabled ? el("a", { class: "btn btn-sm", href: viewer, target: "_blank", rel: "noopener", text: "Open" }) : null,
    ),
  );
  return { item, dot };
}

function showHealth(dot, health) {
  const label = health.healthy ? `Reachable${health.latency_ms != null ? ` (${health.latency_ms} ms)` : ""}` : `Unreachable${health.detail ? `: ${health.detail}` : ""}`;
  dot.dataset.health = health.healthy ? "up" : "down";
  dot.setAttribute("aria-label", label);
  dot.title = label;
}

async function probeAll(entries) {
  const queue = [...entries];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      try {
        showHealth(next.dot, await get(`/api/services/${next.service.id}/health`));
      } catch (error) {
        showHealth(next.dot, { healthy: false, detail: errorText(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEALTH_CONCURRENCY, queue.length) }, worker));
}

async function loadServices() {
  const list = $("#service-list");
  try {
    const services = (await get("/api/services")).services || [];
    const entries = services.map((service) => ({ service, ...serviceItem(service) }));
    list.replaceChildren(
      ...(entries.length ? entries.map((e) => e.item) : [el("li", { class: "empty", text: "No services are shared with you." })]),
    );
    probeAll(entries.filter((e) => e.service.enabled));
  } catch (error) {
    list.replaceChildren();
    showError($("#services-msg"), error);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

async function loadShells() {
  // the local terminal type is listed for admins only, and only admins may ask for the shells
  if (!state.types.terminal) return;
  try {
    state.shells = (await get("/api/shells")).shells || [];
  } catch {
    state.shells = null;
  }
}

async function start() {
  await loadTypes();
  await Promise.all([loadConnections(), loadServices(), keys.load(), loadShells()]);
}

start();
