// The SSH keys section of the Connections tab: generate (private key shown once), list, delete.
import { del, get, post } from "./api.js";
import { $, clearMessage, copyText, el, showError, showMessage, timeEl, withBusy } from "./ui.js";

export class SshKeys {
  constructor({ onChange }) {
    this.keys = [];
    this.onChange = onChange;
    this.area = $("#keys-msg");
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.generate(event.submitter || $("#key-generate"));
    });
    $("#new-key-copy").addEventListener("click", (event) => copyText($("#new-key-private").value, event.currentTarget));
    $("#new-key-download").addEventListener("click", () => this.download());
    $("#new-key-done").addEventListener("click", () => {
      $("#new-key-private").value = "";
      $("#new-key").hidden = true;
    });
  }

  async load() {
    const body = $("#keys-table tbody");
    try {
      this.keys = (await get("/api/ssh-keys")).keys || [];
      body.replaceChildren(
        ...(this.keys.length
          ? this.keys.map((key) => this.row(key))
          : [el("tr", {}, el("td", { colspan: 5, class: "empty", text: "You have no SSH keys yet." }))]),
      );
    } catch (error) {
      body.replaceChildren();
      showError(this.area, error);
    }
    this.onChange(this.keys);
  }

  row(key) {
    return el(
      "tr",
      { dataset: { keyId: key.id } },
      el("td", { class: "wrap" }, el("strong", { text: key.name })),
      el("td", { text: key.key_type }),
      el("td", {}, el("code", { class: "fingerprint", text: key.fingerprint })),
      el("td", {}, timeEl(key.created_at)),
      el(
        "td",
        {},
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "btn btn-secondary btn-sm", text: "Copy public key",
            onclick: (event) => copyText(key.public_key, event.currentTarget) }),
          el("button", { type: "button", class: "btn btn-danger btn-sm", text: "Delete",
            onclick: (event) => this.remove(key, event.currentTarget) }),
        ),
      ),
    );
  }

  async generate(button) {
    clearMessage(this.area);
    const form = $("#key-form");
    if (!form.reportValidity()) return;
    const name = form.elements.namedItem("name").value.trim();
    const keyType = form.elements.namedItem("key_type").value;
    await withBusy(button, this.area, async () => {
      const made = await post("/api/ssh-keys", { name, key_type: keyType });
      this.created = made;
      $("#new-key-name").textContent = made.name;
      $("#new-key-private").value = made.private_key;
      $("#new-key").hidden = false;
      form.reset();
      showMessage(this.area, `Key “${made.name}” generated: ${made.fingerprint}`, "success");
      await this.load();
    });
  }

  download() {
    const text = $("#new-key-private").value;
    if (!text || !this.created) return;
    const safe = this.created.name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60) || "key";
    const url = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
    const link = el("a", { href: url, download: `id_${this.created.key_type}_${safe}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  async remove(key, button) {
    clearMessage(this.area);
    if (!window.confirm(`Delete the SSH key “${key.name}”? Connections using it can no longer log in with it.`)) return;
    await withBusy(button, this.area, async () => {
      await del(`/api/ssh-keys/${key.id}`);
      showMessage(this.area, `Key “${key.name}” deleted.`, "success");
      await this.load();
    });
  }
}
