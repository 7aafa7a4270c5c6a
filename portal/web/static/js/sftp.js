// The SFTP file browser of one SSH connection: navigate, upload (with progress), download, rename,
// delete, new folder, and edit text files. Every call opens its own SFTP session on the server side.
import { ApiError, CSRF_COOKIE, del, get, getCookie, post } from "./api.js";
import { $, clearMessage, el, formatDate, showError, showMessage } from "./ui.js";
import { address, errorText, icon, toast } from "./remote_common.js";

const params = new URLSearchParams(window.location.search);
const connectionId = params.get("connection") || "";
const base = `/api/sftp/${encodeURIComponent(connectionId)}`;
const area = $("#sftp-msg");
const table = $("#file-table");
const state = { path: params.get("path") || "~", listing: null, busy: false };

const buttons = ["#sftp-up", "#sftp-refresh", "#sftp-mkdir", "#sftp-upload"].map((s) => $(s));

function formatBytes(size) {
  if (size === null || size === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const join = (dir, name) => (dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`);
const isDir = (entry) => entry.type === "dir" || (entry.type === "symlink" && entry.target_type === "dir");
const query = (path) => `?path=${encodeURIComponent(path)}`;

// ------------------------------------------------------------------ listing
function breadcrumbs(path) {
  const parts = path.split("/").filter(Boolean);
  const crumbs = [{ label: "/", path: "/" }];
  parts.forEach((part, index) => crumbs.push({ label: part, path: `/${parts.slice(0, index + 1).join("/")}` }));
  return crumbs.map((crumb, index) =>
    el("li", {}, index === crumbs.length - 1
      ? el("span", { "aria-current": "location", text: crumb.label })
      : el("button", { type: "button", class: "crumb", text: crumb.label, onclick: () => navigate(crumb.path) })));
}

function entryRow(entry) {
  const dir = isDir(entry);
  const name = dir
    ? el("button", { type: "button", class: "file-link", onclick: () => navigate(entry.path) }, icon("folder", "icon icon-sm"), el("span", { text: entry.name }))
    : el("span", { class: "file-name" }, icon(entry.type === "symlink" ? "link" : "file", "icon icon-sm"), el("span", { text: entry.name }));
  const actions = el("div", { class: "actions" });
  if (!dir && entry.type !== "other") {
    actions.append(
      el("a", { class: "btn btn-secondary btn-sm", href: `${base}/download${query(entry.path)}`, download: entry.name, text: "Download" }),
      el("button", { type: "button", class: "btn btn-secondary btn-sm", text: "Edit", onclick: () => openEditor(entry) }),
    );
  }
  actions.append(
    el("button", { type: "button", class: "btn btn-secondary btn-sm", text: "Rename", onclick: () => renameEntry(entry) }),
    el("button", { type: "button", class: "btn btn-danger btn-sm", text: "Delete", onclick: (event) => deleteEntry(entry, event.currentTarget) }),
  );
  return el(
    "tr",
    { dataset: { name: entry.name, type: entry.type } },
    el("td", { class: "wrap" }, name),
    el("td", { class: "num", text: dir ? "—" : formatBytes(entry.size) }),
    el("td", { text: entry.mtime ? formatDate(entry.mtime) : "—" }),
    el("td", {}, el("code", { text: entry.permissions || "" })),
    el("td", {}, actions),
  );
}

function render(listing) {
  state.listing = listing;
  state.path = listing.path;
  $("#breadcrumbs").replaceChildren(...breadcrumbs(listing.path));
  $("#sftp-path").value = listing.path;
  $("#sftp-up").disabled = !listing.parent;
  $("#sftp-truncated").hidden = !listing.truncated;
  const rows = listing.entries.map(entryRow);
  table.querySelector("tbody").replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "empty", text: "This folder is empty." }))]),
  );
  const url = new URL(window.location.href);
  url.searchParams.set("path", listing.path);
  window.history.replaceState(null, "", url);
}

async function navigate(path) {
  clearMessage(area);
  table.setAttribute("aria-busy", "true");
  try {
    render(await get(`${base}/list${query(path)}`));
    for (const button of buttons) button.disabled = false;
    $("#sftp-up").disabled = !state.listing.parent;
  } catch (error) {
    showError(area, error);
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

const refresh = () => navigate(state.path);

// ------------------------------------------------------------------ names (new folder, rename)
function askName({ title, label, value = "", ok }) {
  const dialog = $("#name-dialog");
  $("#name-title").textContent = title;
  $("#name-label").textContent = label;
  $("#name-ok").textContent = ok;
  const input = $("#name-input");
  input.value = value;
  dialog.showModal();
  input.focus();
  input.select();
  return new Promise((resolve) => {
    const form = $("#name-form");
    const finish = (result) => {
      form.removeEventListener("submit", onSubmit);
      $("#name-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onCancel);
      if (dialog.open) dialog.close();
      resolve(result);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (name) finish(name);
    };
    const onCancel = () => finish(null);
    form.addEventListener("submit", onSubmit);
    $("#name-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onCancel);
  });
}

async function makeDir() {
  const name = await askName({ title: "New folder", label: `Name of the new folder in ${state.path}`, ok: "Create" });
  if (!name) return;
  try {
    const done = await post(`${base}/mkdir`, { path: join(state.path, name) });
    showMessage(area, `Folder “${name}” created.`, "success");
    await refreshKeepingMessage();
    return done;
  } catch (error) {
    showError(area, error);
  }
  return undefined;
}

async function renameEntry(entry) {
  const name = await askName({ title: `Rename “${entry.name}”`, label: "New name (or a path to move it)", value: entry.name, ok: "Rename" });
  if (!name || name === entry.name) return;
  const parent = entry.path.slice(0, entry.path.length - entry.name.length) || "/";
  const target = name.startsWith("/") ? name : join(parent, name);
  try {
    await post(`${base}/rename`, { old_path: entry.path, new_path: target });
    showMessage(area, `Renamed “${entry.name}” to “${name}”.`, "success");
    await refreshKeepingMessage();
  } catch (error) {
    showError(area, error);
  }
}

async function deleteEntry(entry, button) {
  const what = isDir(entry) ? "folder" : "file";
  if (!window.confirm(`Delete the ${what} “${entry.name}”? This cannot be undone.`)) return;
  button.disabled = true;
  try {
    await del(`${base}/delete${query(entry.path)}`);
    showMessage(area, `Deleted “${entry.name}”.`, "success");
    await refreshKeepingMessage();
  } catch (error) {
    button.disabled = false;
    showError(area, error);
  }
}

async function refreshKeepingMessage() {
  const text = area.hidden ? null : [area.textContent, area.className];
  await navigate(state.path);
  if (text && area.hidden) {
    area.textContent = text[0];
    area.className = text[1];
    area.hidden = false;
  }
}

// ------------------------------------------------------------------ upload
function uploadOne(file, directory) {
  const status = $("#upload-status");
  const bar = $("#upload-progress");
  const percent = $("#upload-percent");
  $("#upload-name").textContent = `Uploading ${file.name} (${formatBytes(file.size)})`;
  bar.value = 0;
  percent.textContent = "0%";
  status.hidden = false;
  status.dataset.state = "uploading";
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${base}/upload`);
    xhr.setRequestHeader("Accept", "application/json");
    const token = getCookie(CSRF_COOKIE);
    if (token) xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const value = Math.floor((event.loaded / event.total) * 100);
      bar.value = value;
      percent.textContent = `${value}%`;
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = 100;
        percent.textContent = "100%";
        status.dataset.state = "done";
        resolve(data);
      } else {
        status.dataset.state = "failed";
        reject(new ApiError(xhr.status, data && typeof data === "object" ? data : null));
      }
    });
    xhr.addEventListener("error", () => {
      status.dataset.state = "failed";
      reject(new ApiError(0, { error: "The upload could not reach the portal." }));
    });
    xhr.addEventListener("abort", () => {
      status.dataset.state = "failed";
      reject(new ApiError(0, { error: "The upload was cancelled." }));
    });
    const body = new FormData();
    body.append("path", directory); // before the file: the server streams the file as it arrives
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

async function uploadFiles(files) {
  if (!files.length) return;
  clearMessage(area);
  const directory = state.path;
  let done = 0;
  for (const file of files) {
    try {
      await uploadOne(file, directory);
      done += 1;
    } catch (error) {
      showError(area, error);
      break;
    }
  }
  if (done) {
    $("#upload-name").textContent = done === 1 ? `Uploaded ${files[0].name}` : `Uploaded ${done} files`;
    if (area.hidden) showMessage(area, done === 1 ? `Uploaded “${files[0].name}”.` : `Uploaded ${done} files.`, "success");
    await refreshKeepingMessage();
  }
}

$("#sftp-upload").addEventListener("click", () => $("#sftp-upload-input").click());
$("#sftp-upload-input").addEventListener("change", async (event) => {
  const input = event.currentTarget;
  const files = [...input.files];
  await uploadFiles(files);
  input.value = "";
});

const zone = $("#drop-zone");
zone.addEventListener("dragover", (event) => {
  if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
  event.preventDefault();
  zone.classList.add("dragging");
});
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  zone.classList.remove("dragging");
  if (!event.dataTransfer?.files?.length) return;
  event.preventDefault();
  uploadFiles([...event.dataTransfer.files]);
});

// ------------------------------------------------------------------ editor
const editor = { path: null, dirty: false };

async function openEditor(entry) {
  const section = $("#editor");
  const message = $("#editor-msg");
  clearMessage(message);
  try {
    const file = await get(`${base}/read${query(entry.path)}`);
    editor.path = file.path;
    editor.dirty = false;
    $("#editor-path").textContent = file.path;
    $("#editor-state").textContent = formatBytes(file.size);
    $("#editor-text").value = file.content;
    section.hidden = false;
    section.scrollIntoView({ block: "nearest" });
    $("#editor-text").focus();
  } catch (error) {
    toast(errorText(error));
  }
}

$("#editor-text").addEventListener("input", () => {
  editor.dirty = true;
  $("#editor-state").textContent = "Unsaved changes";
});
$("#editor-save").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const message = $("#editor-msg");
  button.disabled = true;
  try {
    const done = await post(`${base}/write`, { path: editor.path, content: $("#editor-text").value });
    editor.dirty = false;
    $("#editor-state").textContent = done.size != null ? `Saved · ${formatBytes(done.size)}` : "Saved";
    showMessage(message, `Saved ${done.path || editor.path}.`, "success");
    await navigate(state.path);
  } catch (error) {
    showError(message, error);
  } finally {
    button.disabled = false;
  }
});
$("#editor-close").addEventListener("click", () => {
  if (editor.dirty && !window.confirm("Close without saving your changes?")) return;
  editor.path = null;
  editor.dirty = false;
  $("#editor").hidden = true;
});
window.addEventListener("beforeunload", (event) => {
  if (editor.dirty) event.preventDefault();
});

// ------------------------------------------------------------------ start
$("#sftp-up").addEventListener("click", () => {
  if (state.listing?.parent) navigate(state.listing.parent);
});
$("#sftp-refresh").addEventListener("click", refresh);
$("#sftp-mkdir").addEventListener("click", makeDir);
$("#sftp-goto").addEventListener("submit", (event) => {
  event.preventDefault();
  const path = $("#sftp-path").value.trim();
  if (path) navigate(path);
});

async function start() {
  if (!connectionId) {
    showMessage(area, "This page needs ?connection= in its address: open it from an SSH connection’s Files button.");
    table.querySelector("tbody").replaceChildren();
    return;
  }
  try {
    const connection = await get(`/api/connections/${encodeURIComponent(connectionId)}`);
    $("#sftp-name").textContent = connection.name;
    $("#sftp-address").textContent = `${connection.config?.username ? `${connection.config.username}@` : ""}${address(connection.host, connection.port)}`;
    document.title = `Files on ${connection.name} · Open Relay Portal`;
    const terminal = $("#sftp-terminal");
    terminal.href = `/terminal/connect?connection=${encodeURIComponent(connectionId)}`;
    terminal.hidden = false;
  } catch (error) {
    showError(area, error);
    table.querySelector("tbody").replaceChildren();
    return;
  }
  await navigate(state.path);
}

start();
