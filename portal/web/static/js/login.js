// The sign-in form: password step, then (when the account has 2FA) the code step.
import { ApiError, post } from "./api.js";
import { $, clearMessage, showError, showMessage } from "./ui.js";

const form = $("#login-form");
const area = $("#login-msg");
const username = $("#username");
const password = $("#password");
const code = $("#totp-code");
const submit = $("#login-submit");
const back = $("#totp-back");
const stepPassword = $("#step-password");
const stepTotp = $("#step-totp");

/** Where to go after signing in: a same-site path from ?next=, else the server's choice. */
export function safeNext(raw) {
  if (!raw || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return null;
  if (/[\u0000-\u001f]/.test(raw)) return null;
  return raw;
}

function showTotpStep(on) {
  stepTotp.hidden = !on;
  stepPassword.hidden = on;
  back.hidden = !on;
  code.required = on;
  submit.textContent = on ? "Verify" : "Sign in";
  if (on) {
    code.value = "";
    code.focus();
  } else {
    password.value = "";
    password.focus();
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(area);
  const body = { username: username.value.trim(), password: password.value };
  const totpStep = !stepTotp.hidden;
  if (totpStep) {
    body.totp_code = code.value.trim();
    if (!body.totp_code) {
      showMessage(area, "Enter the code from your authenticator app or a backup code.");
      return;
    }
  }
  submit.disabled = true;
  try {
    const result = await post("/login", body, { redirectOn401: false });
    showMessage(area, "Signed in. Loading…", "success");
    const next = safeNext(new URLSearchParams(window.location.search).get("next"));
    window.location.assign(next || result.redirect || "/dashboard");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && error.data.totp_required) {
      if (!totpStep) {
        showTotpStep(true);
        showMessage(area, "Enter your two-factor authentication code.", "info");
      } else {
        showError(area, error);
        code.select();
      }
    } else {
      if (error instanceof ApiError && error.status === 401) {
        showTotpStep(false);
      }
      showError(area, error);
    }
  } finally {
    submit.disabled = false;
  }
});

back.addEventListener("click", () => {
  clearMessage(area);
  showTotpStep(false);
  username.focus();
});

const presetUser = new URLSearchParams(window.location.search).get("username");
if (presetUser) {
  username.value = presetUser;
  password.focus();
}
