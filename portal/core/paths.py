"""The one path guard for every path a user names, remote (SFTP) or local (the data dir).

Remote servers enforce their own permissions, so the remote guard is about unambiguous, sane
paths: no NUL or control characters (they truncate or hide parts of a name in logs and
listings), a bounded length, and ``..`` resolved lexically so the path the portal acts on is the
one it shows. Local paths must in addition stay inside their base directory, symlinks included.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from portal.core.errors import BadRequest

MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_text(path: str, field: str) -> bytes:
    """The UTF-8 bytes of ``path``, refusing what no sane path contains."""
    if "\x00" in path:
        raise BadRequest("Paths cannot contain NUL bytes", field=field)
    if _CONTROL.search(path):
        raise BadRequest("Paths cannot contain control characters", field=field)
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("Paths must be valid UTF-8", field=field) from None
    if len(encoded) > MAX_PATH_BYTES:
        raise BadRequest(f"Path longer than {MAX_PATH_BYTES} bytes", field=field)
    if any(len(part.encode()) > MAX_NAME_BYTES for part in path.split("/")):
        raise BadRequest(f"A path component is longer than {MAX_NAME_BYTES} bytes", field=field)
    return encoded


def check_remote_path(path: str, home: str = "/", *, field: str = "path") -> str:
    """``path`` as an absolute, normalised POSIX path.

    Relative paths (and ``~``, ``~/…``) are relative to ``home``, the SFTP server's start
    directory. ``..`` is resolved lexically (``/a/b/../c`` is ``/a/c``; ``/..`` is ``/``), not
    by following symlinks on the server, so the answer depends only on the string.
    """
    if path == "":
        raise BadRequest("A path is required", field=field)
    _check_text(path, field)
    if path == "~" or path.startswith("~/"):
        path = path[2:] if path.startswith("~/") else ""
    if not path.startswith("/"):
        path = posixpath.join(home, path) if path else home
    normal = posixpath.normpath(path)
    if normal.startswith("//"):  # POSIX lets normpath keep exactly two leading slashes
        normal = "/" + normal.lstrip("/")
    _check_text(normal, field)
    return normal


def check_file_name(name: str, *, field: str = "filename") -> str:
    """One path component (an uploaded file's name): no separators, not ``.`` or ``..``.

    Browsers may send a full client path as a file name (old Internet Explorer did), so only
    the last component of either kind of separator is kept.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        raise BadRequest("The file needs a name", field=field)
    _check_text(base, field)
    return base


def check_local_path(base_dir: Path, name: str, *, field: str = "path") -> Path:
    """``base_dir / name`` resolved, refusing anything that ends up outside ``base_dir``.

    Symlinks are resolved on both sides, so a link inside the base pointing outside it is an
    escape too. The result may not exist yet (a file about to be written).
    """
    if name == "":
        raise BadRequest("A path is required", field=field)
    _check_text(name, field)
    if name.startswith("/") or "\\" in name:
        raise BadRequest("Give a path relative to its directory", field=field)
    base = base_dir.resolve()
    target = (base / name).resolve()
    if target != base and not target.is_relative_to(base):
        raise BadRequest("Path outside its directory", field=field)
    return target


__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "check_file_name", "check_local_path", "check_remote_path"]
