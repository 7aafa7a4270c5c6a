"""The path guard (portal/core/paths.py): remote paths normalised, unsafe text and local escapes refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portal.core.errors import BadRequest
from portal.core.paths import MAX_PATH_BYTES, check_file_name, check_local_path, check_remote_path

HOME = "/home/alice"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/", "/"),
        ("/etc/passwd", "/etc/passwd"),
        ("/a/b/../c", "/a/c"),
        ("/a/./b/", "/a/b"),
        ("/..", "/"),
        ("/../../etc", "/etc"),
        ("//etc//ssh///", "/etc/ssh"),
        ("///x", "/x"),
        (".", HOME),
        ("docs/a.txt", f"{HOME}/docs/a.txt"),
        ("..", "/home"),
        ("../../..", "/"),
        ("../bob/x", "/home/bob/x"),
        ("~", HOME),
        ("~/notes", f"{HOME}/notes"),
        ("~bob", f"{HOME}/~bob"),  # no other users' homes: a name like any other
        ("with space /ünïcödé ✓", f"{HOME}/with space /ünïcödé ✓"),
        (" ", f"{HOME}/ "),
    ],
)
def test_remote_paths_are_normalised_lexically(given: str, expected: str) -> None:
    assert check_remote_path(given, HOME) == expected


def test_relative_paths_default_to_the_root() -> None:
    assert check_remote_path("a/../b") == "/b"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "A path is required"),
        ("/a\x00b", "NUL"),
        ("/a\nb", "control characters"),
        ("/a\rb", "control characters"),
        ("/a\tb", "control characters"),
        ("/\x1b[31mred", "control characters"),
        ("/a\x7f", "control characters"),
        ("/a\x85b", "control characters"),  # C1 (NEXT LINE)
        ("/a\udcffb", "UTF-8"),  # a lone surrogate, as os.fsdecode makes of invalid bytes
        ("/" + "a" * 256, "component"),
        ("/" + "a/" * (MAX_PATH_BYTES // 2), "longer than 4096"),
        ("/" + "é/" * 1400, "longer than 4096"),  # 4201 bytes, 2801 characters
    ],
)
def test_unsafe_remote_paths_are_refused(bad: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_remote_path(bad, HOME, field="new_path")
    assert message in caught.value.message
    assert caught.value.extra == {"field": "new_path"}


def test_the_longest_path_passes() -> None:
    path = "/" + "/".join(["a" * 255] * 16)
    assert len(path) == 4096 and check_remote_path(path) == path


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a.txt", "a.txt"), ("dir/a.txt", "a.txt"), ("C:\\Users\\me\\a.txt", "a.txt"), ("..\\..\\x", "x"), (" b ", "b")],
)
def test_file_names_keep_only_their_last_component(given: str, expected: str) -> None:
    assert check_file_name(given) == expected


@pytest.mark.parametrize("bad", ["", ".", "..", "a/", "x/..", "a\x00", "n\nl", "n" * 256])
def test_bad_file_names_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        check_file_name(bad)


def test_local_paths_stay_in_their_directory(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "f.txt").write_text("x")
    assert check_local_path(base, "sub/f.txt") == (base / "sub" / "f.txt").resolve()
    assert check_local_path(base, "sub/../new.txt") == (base / "new.txt").resolve()  # may not exist yet
    assert check_local_path(base, ".") == base.resolve()


@pytest.mark.parametrize("bad", ["", "../x", "sub/../../x", "/etc/passwd", "a\x00b", "a\nb", "..\\x", "..", "a" * 256])
def test_local_escapes_and_unsafe_names_are_refused(tmp_path: Path, bad: str) -> None:
    (tmp_path / "base" / "sub").mkdir(parents=True)
    with pytest.raises(BadRequest):
        check_local_path(tmp_path / "base", bad)


def test_symlinks_out_of_the_directory_are_escapes(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (base / "link").symlink_to(outside)
    (base / "file-link").symlink_to(outside / "secret")
    (base / "inner").mkdir()
    (base / "inner-link").symlink_to(base / "inner")
    for name in ("link", "link/secret", "file-link", "link/new-file"):
        with pytest.raises(BadRequest, match="outside"):
            check_local_path(base, name)
    assert check_local_path(base, "inner-link/x") == (base / "inner" / "x").resolve()


def test_a_symlinked_base_directory_is_resolved_too(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    assert check_local_path(alias, "f") == real.resolve() / "f"
