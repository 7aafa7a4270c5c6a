// Admin: the invite code, creating users, roles, password resets and (superadmin) deletion.
import { del, get, post, put } from "./api.js";
import { $, ROLES, clearMessage, copyText, el, formatDate, roleRank, showError, showMessage, timeEl, viewer, withBusy } from "./ui.js";

const PAGE_SIZE = 25;
const me = viewer();
const state = { offset: 0, q: "", total: 0, request: 0 };

/** Roles the viewer may hand out: strictly below their own. */
const assignable = ROLES.filter((role) => roleRank(role) < roleRank(me.role));

function canManage(user) {
  return user.id !== me.id && roleRank(me.role) > roleRank(user.role);
}

// -- invite code ----------------------------------------------------------------------------------
async function loadInvite() {
  try {
    const data = await get("/api/invite-code");
    $("#invite-code").textContent = data.invite_code;
    $("#invite-expires").textContent = `Valid until ${formatDate(data.expires_at)}.`;
  } catch (error) {
    $("#invite-code").textContent = "unavailable";
    showError($("#invite-msg"), error);
  }
}

$("#invite-copy").addEventListener("click", (event) => copyText($("#invite-code").textContent, event.target));

// -- create ---------------------------------------------------------------------------------------
$("#new-role").replaceChildren(...assignable.map((role) => el("option", { value: role, text: role })));

$("#new-password-generate").addEventListener("click", () => {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  $("#new-password").value = Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
});

$("#create-user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#create-user-msg");
  clearMessage(area);
  const body = {
    username: $("#new-username").value.trim(),
    password: $("#new-password").value,
    role: $("#new-role").value,
  };
  await withBusy($("#create-user-submit"), area, async () => {
    const user = await post("/api/users", body);
    event.target.reset();
    showMessage(area, `User “${user.username}” created with the role ${user.role}.`, "success");
    await loadUsers();
  });
});

// -- list -----------------------------------------------------------------------------------------
function roleCell(user) {
  if (!canManage(user)) {
    return el("span", { class: `badge badge-${user.role}`, text: user.role });
  }
  const options = new Set([...assignable, user.role]);
  const select = el(
    "select",
    { "aria-label": `Role of ${user.username}`, dataset: { role: user.role } },
    ...ROLES.filter((role) => options.has(role)).map((role) =>
      el("option", { value: role, text: role, selected: role === user.role }),
    ),
  );
  select.addEventListener("change", () => changeRole(user, select));
  return select;
}

function userRow(user) {
  const actions = el("div", { class: "actions" });
  if (canManage(user)) {
    actions.append(
      el("button", {
        type: "button",
        class: "btn btn-secondary btn-sm",
        text: "Reset password",
        onclick: (event) => resetPassword(user, event.currentTarget),
      }),
    );
    if (me.role === "superadmin") {
      actions.append(
        el("button", { type: "button", class: "btn btn-danger btn-sm", text: "Delete", onclick: (event) => deleteUser(user, event.currentTarget) }),
      );
    }
  } else if (user.id === me.id) {
    actions.append(el("span", { class: "muted small", text: "you" }));
  }
  const name = el("td", { class: "wrap" }, el("strong", { text: user.username }));
  if (user.nickname) name.append(el("div", { class: "muted small", text: user.nickname }));
  return el(
    "tr",
    { dataset: { userId: user.id, username: user.username } },
    el("td", { class: "muted", text: String(user.id) }),
    name,
    el("td", {}, roleCell(user)),
    el(
      "td",
      {},
      user.totp_enabled
        ? el("span", { class: "badge badge-success", text: "on" })
        : el("span", { class: "muted", text: "off" }),
    ),
    el("td", {}, timeEl(user.created_at)),
    el("td", {}, user.last_login_at ? timeEl(user.last_login_at) : el("span", { class: "muted", text: "never" })),
    el("td", {}, actions),
  );
}

async function loadUsers() {
  const body = $("#users-table tbody");
  const request = ++state.request;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
  if (state.q) params.set("q", state.q);
  try {
    const data = await get(`/api/users?${params}`);
    if (request !== state.request) return undefined; // a newer search or page is on its way
    state.total = data.total;
    if (data.users.length === 0 && state.offset > 0 && data.total > 0) {
      state.offset = Math.max(0, Math.floor((data.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      return loadUsers();
    }
    body.replaceChildren(
      ...(data.users.length
        ? data.users.map(userRow)
        : [el("tr", {}, el("td", { colspan: 7, class: "empty", text: state.q ? "No user matches." : "No users." }))]),
    );
    const first = data.total ? state.offset + 1 : 0;
    const last = state.offset + data.users.length;
    $("#users-range").textContent = `${first}–${last} of ${data.total}`;
    $("#users-prev").disabled = state.offset === 0;
    $("#users-next").disabled = last >= data.total;
  } catch (error) {
    showError($("#users-msg"), error);
  }
  return undefined;
}

$("#users-prev").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE_SIZE);
  loadUsers();
});
$("#users-next").addEventListener("click", () => {
  state.offset += PAGE_SIZE;
  loadUsers();
});

let searchTimer = null;
$("#user-search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.q = event.target.value.trim();
    state.offset = 0;
    loadUsers();
  }, 250);
});
$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  state.q = $("#user-search").value.trim();
  state.offset = 0;
  loadUsers();
});

// -- actions --------------------------------------------------------------------------------------
async function changeRole(user, select) {
  const area = $("#users-msg");
  clearMessage(area);
  const role = select.value;
  select.disabled = true;
  try {
    const updated = await put(`/api/users/${user.id}/role`, { role });
    user.role = updated.role;
    select.dataset.role = updated.role;
    showMessage(area, `${updated.username} is now ${updated.role}.`, "success");
  } catch (error) {
    select.value = select.dataset.role;
    showError(area, error);
  } finally {
    select.disabled = false;
  }
}

async function resetPassword(user, button) {
  const area = $("#users-msg");
  clearMessage(area);
  if (!window.confirm(`Reset the password of ${user.username}? All their sessions will be signed out.`)) return;
  await withBusy(button, area, async () => {
    const result = await post(`/api/users/${user.id}/reset-password`);
    $("#temp-password-user").textContent = user.username;
    $("#temp-password-value").value = result.temporary_password || "";
    $("#temp-password").hidden = false;
    $("#temp-password-value").select();
  });
}

$("#temp-password-copy").addEventListener("click", (event) => copyText($("#temp-password-value").value, event.target));
$("#temp-password-done").addEventListener("click", () => {
  $("#temp-password-value").value = "";
  $("#temp-password").hidden = true;
});

async function deleteUser(user, button) {
  const area = $("#users-msg");
  clearMessage(area);
  if (!window.confirm(`Delete the user ${user.username} permanently? This cannot be undone.`)) return;
  await withBusy(button, area, async () => {
    await del(`/api/users/${user.id}`);
    showMessage(area, `User ${user.username} deleted.`, "success");
    await loadUsers();
  });
}

loadInvite();
loadUsers();
