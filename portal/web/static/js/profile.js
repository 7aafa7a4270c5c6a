// The profile page: name, status, avatar, anonymous mode, password and two-factor authentication.
import { get, post, put } from "./api.js";
import { $, clearMessage, copyText, el, renderAvatar, showError, showMessage, updateUserEverywhere, withBusy } from "./ui.js";

let me = null;

function fill(data) {
  me = data;
  $("#nickname").value = data.nickname || "";
  $("#status").value = data.status || "online";
  $("#status-message").value = data.status_message || "";
  $("#avatar-color").value = data.avatar.color || "#2563eb";
  $("#avatar-initials").value = data.avatar.initials || "";
  $("#avatar-emoji").value = data.avatar.emoji || "";
  $("#anonymous").checked = Boolean(data.anonymous);
  renderPreview();
  updateUserEverywhere(data);
}

// -- name and status ------------------------------------------------------------------------------
$("#nickname-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#nickname-msg");
  clearMessage(area);
  const nickname = $("#nickname").value.trim();
  await withBusy($("#nickname-save"), area, async () => {
    fill(await put("/api/me/nickname", { nickname: nickname || null }));
    showMessage(area, nickname ? `Nickname set to “${me.nickname}”.` : "Nickname cleared.", "success");
  });
});

$("#status-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#status-msg");
  clearMessage(area);
  const body = { status: $("#status").value, status_message: $("#status-message").value.trim() || null };
  await withBusy($("#status-save"), area, async () => {
    fill(await put("/api/me/status", body));
    showMessage(area, "Status updated.", "success");
  });
});

// -- avatar ---------------------------------------------------------------------------------------
function avatarDraft() {
  return {
    color: $("#avatar-color").value || null,
    emoji: $("#avatar-emoji").value.trim() || null,
    initials: $("#avatar-initials").value.trim().toUpperCase() || null,
  };
}

function renderPreview() {
  if (!me) return;
  renderAvatar($("#avatar-preview"), { ...me, anonymous: false, avatar: avatarDraft() });
}

for (const id of ["#avatar-color", "#avatar-emoji", "#avatar-initials"]) {
  $(id).addEventListener("input", renderPreview);
}

$("#avatar-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#avatar-msg");
  clearMessage(area);
  await withBusy($("#avatar-save"), area, async () => {
    fill(await put("/api/me/avatar", avatarDraft()));
    showMessage(area, "Avatar saved.", "success");
  });
});

$("#avatar-reset").addEventListener("click", async () => {
  const area = $("#avatar-msg");
  clearMessage(area);
  await withBusy($("#avatar-reset"), area, async () => {
    fill(await put("/api/me/avatar", { color: null, emoji: null, initials: null }));
    showMessage(area, "Avatar reset to the default.", "success");
  });
});

// -- anonymous mode -------------------------------------------------------------------------------
$("#anonymous").addEventListener("change", async (event) => {
  const box = event.target;
  const area = $("#anonymous-msg");
  clearMessage(area);
  const wanted = box.checked;
  box.disabled = true;
  try {
    fill(await put("/api/me/anonymous", { anonymous: wanted }));
    showMessage(area, wanted ? "Anonymous mode is on." : "Anonymous mode is off.", "success");
  } catch (error) {
    box.checked = !wanted;
    showError(area, error);
  } finally {
    box.disabled = false;
  }
});

// -- password -------------------------------------------------------------------------------------
$("#password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#password-msg");
  clearMessage(area);
  const current = $("#current-password").value;
  const next = $("#new-password").value;
  if (next !== $("#confirm-password").value) {
    showMessage(area, "The new passwords do not match.");
    return;
  }
  await withBusy($("#password-save"), area, async () => {
    await post("/api/me/password", { current_password: current, new_password: next });
    event.target.reset();
    showMessage(area, "Password changed. Your other sessions were signed out.", "success");
  });
});

// -- two-factor authentication --------------------------------------------------------------------
const panels = ["#twofa-off", "#twofa-setup", "#twofa-codes", "#twofa-on"];

function showPanel(name) {
  for (const id of panels) $(id).hidden = id !== name;
}

function setBadge(enabled) {
  const badge = $("#twofa-badge");
  badge.textContent = enabled ? "On" : "Off";
  badge.className = `badge ${enabled ? "badge-success" : "badge-warning"}`;
}

async function loadTwoFactor() {
  const status = await get("/api/user/2fa/status");
  setBadge(status.enabled);
  if (status.enabled) {
    $("#twofa-remaining").textContent = String(status.backup_codes_remaining);
    showPanel("#twofa-on");
  } else {
    showPanel("#twofa-off");
  }
}

/**
 * Insert the server-generated QR code. It is inline SVG markup (no xmlns), so it is parsed in an inert
 * HTML document (nothing runs there) and only a plain <svg> without scripts or handlers is adopted.
 */
function showQr(svgText) {
  const box = $("#twofa-qr");
  const parsed = new DOMParser().parseFromString(String(svgText || ""), "text/html");
  const svg = parsed.body.firstElementChild;
  const unsafe =
    !svg ||
    svg.localName !== "svg" ||
    parsed.body.childElementCount !== 1 ||
    svg.querySelector("script, foreignObject, a, image, use") ||
    [svg, ...svg.querySelectorAll("*")].some((node) =>
      [...node.attributes].some((attr) => attr.name.startsWith("on") || /href$/i.test(attr.name)),
    );
  if (unsafe) {
    box.replaceChildren(el("span", { class: "muted small", text: "QR code unavailable: enter the secret instead." }));
    return;
  }
  const width = svg.getAttribute("width");
  const height = svg.getAttribute("height");
  if (!svg.hasAttribute("viewBox") && width && height) svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("focusable", "false");
  svg.setAttribute("aria-hidden", "true");
  box.replaceChildren(document.importNode(svg, true));
}

$("#twofa-enable").addEventListener("click", async () => {
  const area = $("#twofa-msg");
  clearMessage(area);
  await withBusy($("#twofa-enable"), area, async () => {
    const setup = await post("/api/user/2fa/setup");
    showQr(setup.qr_svg);
    $("#twofa-secret").textContent = setup.secret;
    $("#twofa-qr").title = setup.provisioning_uri;
    showPanel("#twofa-setup");
    $("#twofa-code").value = "";
    $("#twofa-code").focus();
  });
});

$("#twofa-cancel").addEventListener("click", () => {
  clearMessage($("#twofa-msg"));
  $("#twofa-qr").replaceChildren();
  $("#twofa-secret").textContent = "";
  showPanel("#twofa-off");
});

$("#twofa-verify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#twofa-msg");
  clearMessage(area);
  await withBusy($("#twofa-verify"), area, async () => {
    const result = await post("/api/user/2fa/verify", { code: $("#twofa-code").value.trim() });
    $("#twofa-qr").replaceChildren();
    $("#twofa-secret").textContent = "";
    $("#twofa-code-list").replaceChildren(...result.backup_codes.map((code) => el("li", { text: code })));
    $("#twofa-copy-codes").dataset.codes = result.backup_codes.join("\n");
    setBadge(true);
    showPanel("#twofa-codes");
    showMessage(area, "Two-factor authentication is on.", "success");
  });
});

$("#twofa-copy-codes").addEventListener("click", (event) => {
  copyText(event.target.dataset.codes || "", event.target);
});

$("#twofa-codes-done").addEventListener("click", async () => {
  $("#twofa-code-list").replaceChildren();
  delete $("#twofa-copy-codes").dataset.codes;
  clearMessage($("#twofa-msg"));
  await loadTwoFactor().catch((error) => showError($("#twofa-msg"), error));
});

$("#twofa-disable-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const area = $("#twofa-msg");
  clearMessage(area);
  await withBusy($("#twofa-disable"), area, async () => {
    await post("/api/user/2fa/disable", { code: $("#twofa-disable-code").value.trim() });
    event.target.reset();
    await loadTwoFactor();
    showMessage(area, "Two-factor authentication is off.", "success");
  });
});

// -- load -----------------------------------------------------------------------------------------
async function load() {
  try {
    fill(await get("/api/me"));
  } catch (error) {
    showError($("#profile-load-msg"), error);
  }
  try {
    await loadTwoFactor();
  } catch (error) {
    showError($("#twofa-msg"), error);
  }
}

load();
