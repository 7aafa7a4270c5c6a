// Registration with today's invite code.
import { post } from "./api.js";
import { $, clearMessage, showError, showMessage } from "./ui.js";

const form = $("#register-form");
const area = $("#register-msg");
const submit = $("#register-submit");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(area);
  const username = $("#reg-username").value.trim();
  const password = $("#reg-password").value;
  const inviteCode = $("#reg-invite").value.trim();
  if (password.length < 8) {
    showMessage(area, "The password must be at least 8 characters long.");
    return;
  }
  submit.disabled = true;
  try {
    const result = await post("/api/register", { username, password, invite_code: inviteCode }, { redirectOn401: false });
    form.hidden = true;
    showMessage(area, `Account “${result.username}” created. You can sign in now.`, "success");
    $("#register-login-link").href = `/login?username=${encodeURIComponent(result.username)}`;
    $("#register-done").hidden = false;
    $("#register-login-link").focus();
  } catch (error) {
    showError(area, error);
  } finally {
    submit.disabled = false;
  }
});
