// The create/edit form of a connection, generated from its type's JSON Schema (GET /api/connections/types).
//
// Secret fields (writeOnly) are never sent back by the API: when editing, their inputs start empty
// with "unchanged — stored" as placeholder, and an empty input is left out of the update, which the
// API reads as "keep the stored value".
import { post, put } from "./api.js";
import { el, showError } from "./ui.js";
import { address, icon } from "./remote_common.js";

// SSH's auth_method decides which credential fields apply.
const AUTH_FIELDS = { password: ["password"], private_key: ["key"], passphrase: ["key"], ssh_key_id: ["ssh_key"] };
const MULTILINE = new Set(["private_key"]);
// Schema titles come from field names; a few read better spelled out.
const TITLES = { ssh_key_id: "SSH key", auth_method: "Authentication", private_key: "Private key", verify_tls: "Verify the TLS certificate" };
const CHOICES = { auth_method: { password: "Password", key: "Private key (pasted here)", ssh_key: "One of your stored SSH keys" } };

/** Flatten one schema property: {kind, enum, secret, nullable, default, title, description, limits}. */
export function fieldSpec(name, prop) {
  let base = prop;
  let nullable = false;
  if (Array.isArray(prop.anyOf)) {
    nullable = prop.anyOf.some((branch) => branch.type === "null");
    base = { ...(prop.anyOf.find((branch) => branch.type !== "null") || {}), ...prop };
  }
  const secret = Boolean(prop.secret || prop.writeOnly || prop.format === "password");
  let kind = "string";
  if (Array.isArray(base.enum)) kind = "enum";
  else if (base.type === "boolean") kind = "boolean";
  else if (base.type === "integer" || base.type === "number") kind = "number";
  return {
    name,
    kind,
    secret,
    nullable,
    enum: base.enum || [],
    default: prop.default,
    title: TITLES[name] || prop.title || name,
    description: prop.description || "",
    maxLength: base.maxLength,
    minLength: base.minLength,
    minimum: base.minimum,
    maximum: base.maximum,
    integer: base.type === "integer",
  };
}

function inputFor(spec, value, stored, sshKeys, shells) {
  const id = `cfg-${spec.name}`;
  if (spec.name === "shell" && shells) {
    // the local terminal's shell must be one of GET /api/shells
    const select = el("select", { id, name: spec.name },
      el("option", { value: "", text: "Default shell" }),
      ...shells.map((shell) => el("option", { value: shell, text: shell })));
    select.value = value && shells.includes(value) ? value : "";
    return select;
  }
  if (spec.name === "ssh_key_id") {
    const select = el("select", { id, name: spec.name },
      el("option", { value: "", text: sshKeys.length ? "Choose a key…" : "No SSH keys yet: generate one below" }),
      ...sshKeys.map((key) => el("option", { value: String(key.id), text: `${key.name} (${key.key_type}, ${key.fingerprint})` })));
    select.value = value === null || value === undefined ? "" : String(value);
    return select;
  }
  if (spec.kind === "boolean") {
    const box = el("input", { type: "checkbox", class: "switch", id, name: spec.name });
    box.checked = Boolean(value ?? spec.default);
    return box;
  }
  if (spec.kind === "enum") {
    const select = el("select", { id, name: spec.name },
      spec.nullable ? el("option", { value: "", text: "—" }) : null,
      ...spec.enum.map((choice) => el("option", { value: String(choice), text: CHOICES[spec.name]?.[choice] || String(choice) })));
    const current = value ?? spec.default;
    select.value = current === null || current === undefined ? "" : String(current);
    return select;
  }
  const common = {
    id,
    name: spec.name,
    maxlength: spec.maxLength,
    autocomplete: spec.secret ? "new-password" : "off",
    autocapitalize: "none",
    spellcheck: "false",
  };
  let input;
  if (spec.kind === "number") {
    input = el("input", { ...common, type: "number", min: spec.minimum, max: spec.maximum, step: spec.integer ? 1 : "any",
      inputmode: "numeric", maxlength: undefined });
  } else if (MULTILINE.has(spec.name)) {
    input = el("textarea", { ...common, rows: 4, class: "mono key-text" });
  } else {
    input = el("input", { ...common, type: spec.secret ? "password" : "text" });
  }
  if (spec.secret) {
    input.value = "";
    if (stored) input.placeholder = "unchanged — stored";
  } else {
    const current = value ?? spec.default;
    input.value = current === null || current === undefined ? "" : String(current);
  }
  return input;
}

/** The form in the <dialog>: open(type, connection?) and a save callback. */
export class ConnectionForm {
  constructor({ dialog, onSaved, sshKeys, shells }) {
    this.dialog = dialog;
    this.form = dialog.querySelector("form");
    this.fields = dialog.querySelector("#config-fields");
    this.message = dialog.querySelector("#conn-form-msg");
    this.onSaved = onSaved;
    this.sshKeys = sshKeys;
    this.shells = shells;
    this.specs = [];
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    dialog.querySelector("#conn-cancel").addEventListener("click", () => dialog.close());
  }

  /** `type` is the describe() entry of GET /api/connections/types plus its key as `.key`. */
  open(type, connection = null) {
    this.type = type;
    this.connection = connection;
    this.message.hidden = true;
    const editing = Boolean(connection);
    this.dialog.querySelector("#conn-form-title").textContent = editing ? `Edit “${connection.name}”` : `New ${type.name}`;
    this.dialog.querySelector("#conn-form-type").textContent = type.description || type.name;
    this.dialog.querySelector("#conn-form-icon").replaceChildren(icon(type.icon));
    this.dialog.querySelector("#conn-save").textContent = editing ? "Save changes" : "Add connection";

    const presets = type.presets || {};
    const name = this.form.elements.namedItem("name");
    const host = this.form.elements.namedItem("host");
    const port = this.form.elements.namedItem("port");
    name.value = editing ? connection.name : type.name;
    host.value = editing ? connection.host || "" : "";
    port.value = editing ? connection.port ?? "" : presets.port ?? type.default_port ?? "";
    port.placeholder = type.default_port ? String(type.default_port) : "";
    this.dialog.querySelector("#conn-address").hidden = !type.needs_host;
    host.required = Boolean(type.needs_host);

    const schema = type.config_schema || {};
    const required = new Set(schema.required || []);
    const values = editing ? connection.config || {} : presets.config || {};
    this.specs = Object.entries(schema.properties || {}).map(([key, prop]) => fieldSpec(key, prop));
    const rows = this.specs.map((spec) => {
      const shells = type.key === "terminal" ? this.shells() : null;
      const input = inputFor(spec, values[spec.name], Boolean(values[`has_${spec.name}`]), this.sshKeys(), shells);
      if (required.has(spec.name) && spec.kind !== "boolean") input.required = true;
      const hint = spec.description ? el("span", { class: "hint", id: `cfg-${spec.name}-hint`, text: spec.description }) : null;
      if (hint) input.setAttribute("aria-describedby", hint.id);
      if (spec.kind === "boolean") {
        return el("div", { class: "field", dataset: { field: spec.name } },
          el("label", { class: "check", for: input.id }, input, spec.title), hint);
      }
      return el("div", { class: "field", dataset: { field: spec.name } },
        el("label", { for: input.id, text: spec.title }), input, hint);
    });
    this.fields.replaceChildren(el("legend", { class: "label", text: "Settings" }), ...rows);
    this.fields.hidden = rows.length === 0;
    const method = this.form.elements.namedItem("auth_method");
    if (method) method.addEventListener("change", () => this.applyAuthMethod());
    this.applyAuthMethod();
    this.dialog.showModal();
    name.focus();
    name.select();
  }

  applyAuthMethod() {
    const method = this.form.elements.namedItem("auth_method");
    if (!method) return;
    for (const [field, methods] of Object.entries(AUTH_FIELDS)) {
      const row = this.fields.querySelector(`[data-field="${field}"]`);
      if (!row) continue;
      row.hidden = !methods.includes(method.value);
      for (const input of row.querySelectorAll("input, select, textarea")) input.disabled = row.hidden;
    }
  }

  collect() {
    const editing = Boolean(this.connection);
    const config = {};
    for (const spec of this.specs) {
      const row = this.fields.querySelector(`[data-field="${spec.name}"]`);
      if (!row || row.hidden) continue;
      const input = this.form.elements.namedItem(spec.name);
      if (spec.kind === "boolean") {
        config[spec.name] = input.checked;
        continue;
      }
      const raw = input.value;
      if (spec.secret) {
        if (raw !== "") config[spec.name] = raw;
        continue;
      }
      if (raw === "") {
        if (spec.nullable && editing) config[spec.name] = null;
        continue;
      }
      config[spec.name] = spec.kind === "number" || spec.name === "ssh_key_id" ? Number(raw) : raw;
    }
    const body = { name: this.form.elements.namedItem("name").value.trim(), config };
    if (this.type.needs_host) {
      body.host = this.form.elements.namedItem("host").value.trim();
      const port = this.form.elements.namedItem("port").value;
      if (port !== "") body.port = Number(port);
    }
    if (!editing) body.type = this.type.key;
    return body;
  }

  async save() {
    if (!this.form.reportValidity()) return;
    const button = this.dialog.querySelector("#conn-save");
    button.disabled = true;
    try {
      const body = this.collect();
      const saved = this.connection
        ? await put(`/api/connections/${encodeURIComponent(this.connection.id)}`, body)
        : await post("/api/connections", body);
      this.dialog.close();
      this.onSaved(saved, Boolean(this.connection));
    } catch (error) {
      showError(this.message, error);
    } finally {
      button.disabled = false;
    }
  }
}

export const describeConnection = (connection, type) =>
  [type ? type.name : connection.type, address(connection.host, connection.port)].filter(Boolean).join(" · ");
