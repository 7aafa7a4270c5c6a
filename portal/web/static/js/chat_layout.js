// The chat's layout: channel and user drawers on small screens, the users column on wide ones,
// and the pinned-messages panel.
import { $ } from "./ui.js";

const chatRoot = $("#chat");
const NARROW = { channels: "(max-width: 760px)", users: "(max-width: 1100px)" };
const isNarrow = (which) => window.matchMedia(NARROW[which]).matches;

export function closeDrawers() {
  chatRoot.dataset.open = "";
  $("#chat-scrim").hidden = true;
  $("#toggle-channels").setAttribute("aria-expanded", "false");
  $("#toggle-users").setAttribute("aria-expanded", String(!chatRoot.classList.contains("users-hidden") && !isNarrow("users")));
}

/** Wide screens: show or hide the users column. Narrow ones: open a drawer over the messages. */
function toggleDrawer(which, button) {
  if (which === "users" && !isNarrow("users")) {
    const hidden = chatRoot.classList.toggle("users-hidden");
    button.setAttribute("aria-expanded", String(!hidden));
    return;
  }
  const open = chatRoot.dataset.open === which;
  closeDrawers();
  if (!open) {
    chatRoot.dataset.open = which;
    $("#chat-scrim").hidden = false;
    button.setAttribute("aria-expanded", "true");
  }
}

$("#toggle-channels").addEventListener("click", (event) => toggleDrawer("channels", event.currentTarget));
$("#toggle-users").addEventListener("click", (event) => toggleDrawer("users", event.currentTarget));
$("#chat-scrim").addEventListener("click", closeDrawers);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && chatRoot.dataset.open) closeDrawers();
});
$("#channel-list").addEventListener("click", (event) => {
  if (event.target.closest("a.channel-link")) closeDrawers();
});
window.matchMedia(NARROW.users).addEventListener("change", closeDrawers);

function setPinnedOpen(open) {
  $("#pinned-panel").hidden = !open;
  $("#toggle-pinned").setAttribute("aria-expanded", String(open));
}
$("#toggle-pinned").addEventListener("click", () => setPinnedOpen($("#pinned-panel").hidden));
$("#pinned-close").addEventListener("click", () => setPinnedOpen(false));

closeDrawers();
