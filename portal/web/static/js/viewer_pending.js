// The page of a viewer that is not built yet: it names the connection and its address, nothing more.
import { get } from "./api.js";
import { $, showError, showMessage } from "./ui.js";
import { address } from "./remote_common.js";

async function start() {
  const params = new URLSearchParams(window.location.search);
  const connection = params.get("connection");
  const service = params.get("service");
  try {
    let name;
    let type;
    let where;
    if (connection) {
      const c = await get(`/api/connections/${encodeURIComponent(connection)}`);
      const types = (await get("/api/connections/types")).types || {};
      [name, type, where] = [c.name, types[c.type]?.name || c.type, address(c.host, c.port)];
    } else if (service && /^\d+$/.test(service)) {
      const s = await get(`/api/services/${service}`);
      [name, type, where] = [s.name, s.plugin, address(s.host, s.port) || s.path];
    } else {
      showMessage($("#pending-msg"), "This page needs ?connection= in its address.", "info");
      return;
    }
    $("#pending-name").textContent = name;
    $("#pending-type").textContent = type;
    $("#pending-address").textContent = where || "—";
    $("#pending-details").hidden = false;
    document.title = `${name} · Open Relay Portal`;
  } catch (error) {
    showError($("#pending-msg"), error);
  }
}

start();
