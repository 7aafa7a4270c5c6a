"""The SFTP file browser on the sshd peer: navigate from the home directory, make a folder, upload
with a progress bar, rename, edit a text file, download and delete — checked on the server's disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import shot
from tests.peers.sshd import SshServer

pytestmark = pytest.mark.e2e


def ssh_connection(user: UserClient, server: SshServer, name: str = "peer files") -> str:
    made = user.post(
        "/api/connections",
        json={
            "name": name,
            "type": "ssh",
            "host": server.host,
            "port": server.port,
            "config": {"username": server.username, "password": server.password},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def row(page: Any, name: str) -> Any:
    return page.locator(f'#file-table tbody tr[data-name="{name}"]')


def ask_name(page: Any, value: str) -> None:
    dialog = page.locator("#name-dialog")
    expect(dialog).to_be_visible()
    page.fill("#name-input", value)
    page.click("#name-ok")
    expect(dialog).to_be_hidden()


def test_browse_upload_rename_edit_delete(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer, tmp_path: Path
) -> None:
    user = make_user()
    connection_id = ssh_connection(user, ssh_server)
    scratch = ssh_server.scratch
    sign_in(user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())

    # the connections list links ssh connections to their files
    page.goto("/connections")
    page.locator("#connection-list .conn-item", has_text="peer files").get_by_role("link", name="Files").click()
    expect(page).to_have_url(f"/sftp?connection={connection_id}&path={quote(str(ssh_server.home), safe='')}")
    expect(page.locator("#sftp-name")).to_have_text("peer files")
    expect(page.locator("#breadcrumbs [aria-current]")).to_have_text(ssh_server.home.name)
    expect(row(page, scratch.name)).to_have_attribute("data-type", "dir")

    row(page, scratch.name).get_by_role("button", name=scratch.name).click()
    expect(page.locator("#breadcrumbs [aria-current]")).to_have_text(scratch.name)
    expect(page.locator("#file-table tbody")).to_contain_text("This folder is empty.")

    # new folder
    page.click("#sftp-mkdir")
    ask_name(page, "docs")
    expect(row(page, "docs")).to_have_attribute("data-type", "dir")
    assert (scratch / "docs").is_dir()

    # upload, with the progress bar reaching 100 %
    local = tmp_path / "hello.txt"
    local.write_text("hello world\n")
    page.set_input_files("#sftp-upload-input", str(local))
    expect(page.locator("#upload-status")).to_have_attribute("data-state", "done")
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    expect(page.locator("#upload-percent")).to_have_text("100%")
    expect(row(page, "hello.txt")).to_contain_text("12 B")
    assert (scratch / "hello.txt").read_text() == "hello world\n"
    shot(page, "e2e-sftp")

    # rename
    row(page, "hello.txt").get_by_role("button", name="Rename").click()
    ask_name(page, "greeting.txt")
    expect(row(page, "greeting.txt")).to_have_count(1)
    expect(row(page, "hello.txt")).to_have_count(0)
    assert (scratch / "greeting.txt").read_text() == "hello world\n"
    assert not (scratch / "hello.txt").exists()

    # edit a text file and save it
    row(page, "greeting.txt").get_by_role("button", name="Edit").click()
    editor = page.locator("#editor")
    expect(editor).to_be_visible()
    expect(page.locator("#editor-path")).to_have_text(str(scratch / "greeting.txt"))
    expect(page.locator("#editor-text")).to_have_value("hello world\n")
    page.fill("#editor-text", "changed in the browser\nline two\n")
    page.click("#editor-save")
    expect(page.locator("#editor-msg")).to_have_text(f"Saved {scratch / 'greeting.txt'}.")
    assert (scratch / "greeting.txt").read_text() == "changed in the browser\nline two\n"
    page.click("#editor-close")
    expect(editor).to_be_hidden()

    # download
    with page.expect_download() as download:
        row(page, "greeting.txt").get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "greeting.txt"
    assert Path(download.value.path()).read_text() == "changed in the browser\nline two\n"

    # a non-empty folder cannot be deleted: the server's reason is shown
    ssh_server.write_file("docs/inner.txt", "x")
    page.click("#sftp-refresh")
    row(page, "docs").get_by_role("button", name="Delete").click()
    expect(page.locator("#sftp-msg")).to_have_class("msg msg-error")
    assert (scratch / "docs" / "inner.txt").exists()
    (scratch / "docs" / "inner.txt").unlink()

    # delete a file and the (now empty) folder
    row(page, "greeting.txt").get_by_role("button", name="Delete").click()
    expect(page.locator("#sftp-msg")).to_have_text("Deleted “greeting.txt”.")
    expect(row(page, "greeting.txt")).to_have_count(0)
    row(page, "docs").get_by_role("button", name="Delete").click()
    expect(row(page, "docs")).to_have_count(0)
    assert list(scratch.iterdir()) == []

    # breadcrumbs lead back up
    page.locator("#breadcrumbs button", has_text=ssh_server.home.name).click()
    expect(page.locator("#breadcrumbs [aria-current]")).to_have_text(ssh_server.home.name)
    expect(row(page, scratch.name)).to_have_count(1)


def test_go_to_path_and_errors(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    user = make_user()
    connection_id = ssh_connection(user, ssh_server)
    sign_in(user.username, user.password)
    page.goto(f"/sftp?connection={connection_id}&path={ssh_server.scratch}")
    expect(page.locator("#breadcrumbs [aria-current]")).to_have_text(ssh_server.scratch.name)
    page.fill("#sftp-path", str(ssh_server.scratch / "does-not-exist"))
    page.click("#sftp-goto button")
    expect(page.locator("#sftp-msg")).to_contain_text("does-not-exist")
    expect(page.locator("#sftp-msg")).to_have_class("msg msg-error")


def test_another_users_connection(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    owner = make_user()
    connection_id = ssh_connection(owner, ssh_server)
    other = make_user()
    sign_in(other.username, other.password)
    page.goto(f"/sftp?connection={connection_id}")
    expect(page.locator("#sftp-msg")).to_have_text("Connection not found")
    expect(page.locator("#file-table tbody tr")).to_have_count(0)
