// API keys (create, reveal once, revoke, delete) and the caller's active sessions.
import { del, get, post } from "./api.js";
import { $, clearMessage, copyText, el, showError, showMessage, timeEl, withBusy } from "./ui.js";

function keyStatus(key) {
  if (key.revoked) return "revoked";
  if (key.expires_at && new Date(key.expires_at).getTime() <= Date.now()) return "expired";
  return "active";
}

function keyRow(key) {
  const status = keyStatus(key);
  const actions = el("div", { class: "actions" });
  if (status === "active") {
    actions.append(
      el("button", { type: "button", class: "btn btn-secondary btn-sm", text: "Revoke", onclick: (event) => revokeKey(key, event.currentTarget) }),
    );
  }
  actions.append(
    el("button", { type: "button", class: "btn btn-danger btn-sm", text: "Delete", onclick: (event) => deleteKey(key, event.currentTarget) }),
  );
  return el(
    "tr",
    { dataset: { keyId: key.id, status } },
    el("td", { class: "wrap" }, el("strong", { text: key.name })),
    el("td", {}, el("code", { text: `${key.key_prefix}…` })),
    el("td", {}, el("code", { text: key.scopes })),
    el("td", {}, el("span", { class: `badge badge-${status}`, text: status })),
    el("td", {}, timeEl(key.created_at)),
    el("td", {}, key.last_used_at ? timeEl(key.last_used_at) : el("span", { class: "muted", text: "never" })),
    el("td", {}, key.expires_at ? timeEl(key.expires_at) : el("span", { class: "muted", text: "never" })),
    el("td", {}, actions),
  );
}

async function loadKeys() {
  const body = $("#keys-table tbody");
  try {
    const data = await get("/api/api-keys");
    const keys = data.api_keys || [];
    const active = keys.filter((k) => keyStatus(k) === "active").length;
    $("#keys-count").textContent = `${active} active · ${keys.length} total`;
    body.replaceChildren(
      ...(keys.length
        ? keys.map(keyRow)
        : [el("tr", {}, el("td", { colspan: 8, class: "empty", text: "You have no API keys yet." }))]),
    );
  } catch (error) {
    body.replaceChildren();
    showError($("#keys-msg"), error);
  }
}

async function revokeKey(key, button) {
  const area = $("#keys-msg");
  clearMessage(area);
  if (!window.confirm(`Revoke the key “${key.name}”? Programs using it stop working immediately.`)) return;
  await withBusy(button, area, async () => {
    await post(`/api/api-keys/${key.id}/revoke`);
    showMessage(area, `Key “${key.name}” revoked.`, "success");
    await loadKeys();
  });
}

async function deleteKey(key, button) {
  const area = $("#keys-msg");
  clearMessage(area);
  if (!window.confirm(`Delete the key “${key.name}” permanently?`)) return;
  await withBusy(button, area, async () => {
    await del(`/api/api-keys/${key.id}`);
    showMessage(area, `Key “${key.name}” deleted.`, "success");
    await loadKeys();
  });
}

$("#create-key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#create-msg");
  clearMessage(area);
  const days = $("#key-expires").value.trim();
  const body = { name: $("#key-name").value.trim(), scopes: $("#key-scopes").value.trim() || "*" };
  if (days) body.expires_in_days = Number(days);
  await withBusy($("#create-key-submit"), area, async () => {
    const created = await post("/api/api-keys", body);
    $("#new-key-name").textContent = `“${created.name}”`;
    $("#new-key-value").value = created.api_key;
    $("#new-key").hidden = false;
    $("#new-key-value").select();
    event.target.reset();
    await loadKeys();
  });
});

$("#new-key-copy").addEventListener("click", (event) => copyText($("#new-key-value").value, event.target));
$("#new-key-done").addEventListener("click", () => {
  $("#new-key-value").value = "";
  $("#new-key").hidden = true;
});

// -- sessions -------------------------------------------------------------------------------------
const KINDS = { web: "Web sign-in", api: "API token" };

function sessionRow(token) {
  const action = token.current
    ? el("span", { class: "badge badge-accent", text: "This session" })
    : el("button", {
        type: "button",
        class: "btn btn-danger btn-sm",
        text: "Revoke",
        onclick: (event) => revokeSession(token, event.currentTarget),
      });
  return el(
    "tr",
    { dataset: { tokenId: token.token_id, current: String(token.current) } },
    el("td", {}, KINDS[token.kind] || token.kind),
    el("td", {}, timeEl(token.created_at)),
    el("td", {}, token.last_used_at ? timeEl(token.last_used_at) : el("span", { class: "muted", text: "never" })),
    el("td", {}, timeEl(token.expires_at)),
    el("td", {}, action),
  );
}

async function loadSessions() {
  const body = $("#sessions-table tbody");
  try {
    const data = await get("/api/tokens");
    body.replaceChildren(...(data.tokens || []).map(sessionRow));
  } catch (error) {
    body.replaceChildren();
    showError($("#sessions-msg"), error);
  }
}

async function revokeSession(token, button) {
  const area = $("#sessions-msg");
  clearMessage(area);
  await withBusy(button, area, async () => {
    await post("/api/token/revoke", { token_id: token.token_id });
    showMessage(area, "Session revoked.", "success");
    await loadSessions();
  });
}

loadKeys();
loadSessions();
