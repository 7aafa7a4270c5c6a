"""Pages of remote access: the Connections tab and the viewers it opens.

Like the other pages these are shells: each reads ``?connection=`` (or ``?service=``) itself and
asks the JSON API, which enforces ownership, so a page URL carries no authority of its own. The
viewer paths are the ones the plugins hand out (``plugins.base.VIEWER_PATHS``) plus ``/sftp``.
"""

from __future__ import annotations

from fastapi import APIRouter

from portal.remote.plugins.base import VIEWER_PATHS, Viewer
from portal.web.router import page_view

router = APIRouter(include_in_schema=False)

router.add_api_route("/connections", page_view("connections.html", "connections"), methods=["GET"])
router.add_api_route(VIEWER_PATHS[Viewer.TERMINAL], page_view("terminal.html", "connections"), methods=["GET"])
router.add_api_route(VIEWER_PATHS[Viewer.VNC], page_view("vnc.html", "connections"), methods=["GET"])
router.add_api_route("/sftp", page_view("sftp.html", "connections"), methods=["GET"])

# Viewers that are not built yet: the page names the connection and says so, instead of a 404.
_PENDING: dict[Viewer, str] = {
    Viewer.SPICE: "SPICE console",
    Viewer.PROXMOX: "Proxmox VE console",
    Viewer.MEDIA: "media player",
    Viewer.BROWSER: "embedded browser",
}
for _viewer, _label in _PENDING.items():
    router.add_api_route(
        VIEWER_PATHS[_viewer],
        page_view("viewer_pending.html", "connections", viewer_label=_label),
        methods=["GET"],
    )
