// The one way pages talk to the JSON API: JSON in and out, cookies sent, CSRF header on unsafe methods.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
export const CSRF_COOKIE = "portal_csrf";

/** An API failure; `message` is the server's human message, `data` the whole error body. */
export class ApiError extends Error {
  constructor(status, data) {
    super((data && data.error) || `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.data = data || {};
  }

  /** The message to show, with the wait time of rate limits. */
  get display() {
    const wait = Number(this.data.retry_after);
    if (this.status === 429 && wait > 0) {
      return `${this.message.replace(/[.!]?$/, ".")} Retry in ${formatWait(wait)}.`;
    }
    return this.message;
  }
}

export function formatWait(seconds) {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 90) return `${minutes} minutes`;
  return `${Math.ceil(minutes / 60)} hours`;
}

export function getCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/**
 * Call the API. Resolves with the parsed JSON body; rejects with ApiError.
 * A 401 on a signed-in page means the session ended: go to the login page (unless `redirectOn401` is false).
 */
export async function api(path, { method = "GET", body, redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (UNSAFE.has(method)) {
    const token = getCookie(CSRF_COOKIE);
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: "Could not reach the portal. Check your connection and try again." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: `Unexpected response from the server (${response.status})` };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data && typeof data === "object" ? data : null);
    if (response.status === 401 && redirectOn401) {
      const here = window.location.pathname + window.location.search;
      window.location.assign(`/login?next=${encodeURIComponent(here)}`);
    }
    throw error;
  }
  return data;
}

export const get = (path, options) => api(path, { ...options, method: "GET" });
export const post = (path, body, options) => api(path, { ...options, method: "POST", body });
export const put = (path, body, options) => api(path, { ...options, method: "PUT", body });
export const del = (path, options) => api(path, { ...options, method: "DELETE" });
