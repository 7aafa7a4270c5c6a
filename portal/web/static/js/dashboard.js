// The dashboard: recent activity.
import { get } from "./api.js";
import { $, el, showError, timeEl } from "./ui.js";

const LABELS = {
  login: "Signed in",
  login_failed: "Failed sign-in",
  registered: "Registered",
  password_changed: "Password changed",
  "2fa_enabled": "Two-factor turned on",
  "2fa_disabled": "Two-factor turned off",
  api_key_created: "API key created",
  api_key_revoked: "API key revoked",
  api_key_deleted: "API key deleted",
  user_created: "User created",
  role_changed: "Role changed",
  password_reset: "Password reset",
  user_deleted: "User deleted",
};

function label(action) {
  if (LABELS[action]) return LABELS[action];
  const words = String(action).replace(/[_-]+/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

async function loadActivity() {
  const list = $("#activity-list");
  const me = Number(document.getElementById("main").dataset.userId);
  try {
    const data = await get("/api/activity?limit=10");
    const items = data.activities || [];
    list.replaceChildren(
      ...(items.length
        ? items.map((item) =>
            el(
              "li",
              { dataset: { action: item.action } },
              el("span", { class: `dot${item.action.includes("failed") ? " bad" : ""}`, "aria-hidden": "true" }),
              el(
                "div",
                { class: "body" },
                el("div", { class: "what", text: label(item.action) }),
                el(
                  "div",
                  { class: "details" },
                  item.details || "",
                  item.username && item.user_id !== me ? ` · ${item.username}` : "",
                ),
              ),
              timeEl(item.created_at),
            ),
          )
        : [el("li", { class: "muted", text: "No activity yet." })]),
    );
  } catch (error) {
    list.replaceChildren();
    showError($("#activity-msg"), error);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

loadActivity();
