"""``POST /api/chat/upload``: real images only, metadata stripped, size capped; image messages."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

from tests.chat.conftest import Room, assert_api_error
from tests.conftest import UserClient
from tests.portal_server import PortalServer

MARKER = "SecretCameraOwner-7f3a"
MB = 1024 * 1024


def _image_with_exif(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x013B] = MARKER  # Artist
    exif[0x010E] = "GPS and camera details"  # ImageDescription
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes())
    data = out.getvalue()
    assert MARKER.encode() in data  # the metadata really is in the upload
    with Image.open(io.BytesIO(data)) as check:
        assert check.getexif().get(0x013B) == MARKER
    return data


def _upload(user: UserClient, data: bytes, filename: str, content_type: str = "image/png") -> httpx.Response:
    return user.post("/api/chat/upload", files={"image": (filename, data, content_type)})


@pytest.mark.parametrize(("fmt", "ext", "mime"), [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg")])
def test_upload_strips_metadata(portal: PortalServer, bystander: UserClient, fmt: str, ext: str, mime: str) -> None:
    user = bystander
    resp = _upload(user, _image_with_exif(fmt), f"holiday.{ext}", mime)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    url = body["url"]
    assert url.startswith("/static/uploads/chat/") and url.endswith("." + ext)
    assert (body["width"], body["height"], body["format"]) == (40, 30, ext)
    served = httpx.get(portal.base_url + url)
    assert served.status_code == 200
    assert served.headers["content-type"] == mime
    assert body["size"] == len(served.content)
    assert MARKER.encode() not in served.content
    assert b"Exif" not in served.content and b"eXIf" not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == fmt
        assert image.size == (40, 30)
        assert dict(image.getexif()) == {}
    stored = portal.shared.data_dir / "uploads" / "chat" / url.rsplit("/", 1)[1]
    assert stored.read_bytes() == served.content


def test_gif_and_webp_are_accepted(bystander: UserClient) -> None:
    user = bystander
    for fmt, ext in (("GIF", "gif"), ("WEBP", "webp")):
        out = io.BytesIO()
        Image.new("RGB", (8, 8), (0, 128, 255)).save(out, format=fmt)
        resp = _upload(user, out.getvalue(), f"x.{ext}", f"image/{ext}")
        assert resp.status_code == 201, resp.text
        assert resp.json()["format"] == ext and resp.json()["url"].endswith("." + ext)


def test_non_images_are_refused(bystander: UserClient) -> None:
    user = bystander
    assert_api_error(_upload(user, b"just some text, honestly\n" * 20, "cat.png"), 400, "not a valid image")
    assert_api_error(_upload(user, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "broken.png"), 400)
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, format="BMP")
    assert_api_error(_upload(user, bmp.getvalue(), "img.png"), 400, "JPEG, PNG, GIF and WebP")
    assert_api_error(_upload(user, b"", "empty.png"), 400)
    assert_api_error(user.post("/api/chat/upload", data={"image": "not a file"}), 400)


def test_images_over_5_mb_are_refused(bystander: UserClient) -> None:
    user = bystander
    just_over = b"\x89PNG\r\n\x1a\n" + os.urandom(5 * MB + 1 - 8)
    assert_api_error(_upload(user, just_over, "big.png"), 413)
    assert_api_error(_upload(user, os.urandom(7 * MB), "bigger.png"), 413)


def test_upload_needs_authentication(base_url: str) -> None:
    resp = httpx.post(base_url + "/api/chat/upload", files={"image": ("a.png", _image_with_exif("PNG"), "image/png")})
    assert_api_error(resp, 401)


def test_image_message_is_delivered_and_made_up_urls_are_refused(
    room: Room, make_user: Callable[..., UserClient], bystander: UserClient
) -> None:
    alice, bob = make_user(), bystander
    url = _upload(alice, _image_with_exif("PNG"), "pic.png").json()["url"]
    created, (a, b) = room(alice, bob)
    name = created["name"]
    a.send_json({"type": "message", "channel": name, "message": "", "image_url": url})
    received = b.recv_until("message")
    assert (received["image_url"], received["message"], received["user_id"]) == (url, "", alice.id)
    a.send_json({"type": "message", "channel": name, "message": "with caption", "image_url": url})
    assert b.recv_until("message", message="with caption")["image_url"] == url
    history = {m["message"]: m for m in b.join(name)["history"]["messages"]}
    assert history[""]["image_url"] == url and history["with caption"]["image_url"] == url
    for made_up in (
        "/static/uploads/chat/" + "0" * 32 + ".png",  # the right shape, but never uploaded
        "https://evil.example/tracker.png",
        "/static/uploads/chat/../../portal.db",
        "javascript:alert(1)",
    ):
        a.send_json({"type": "message", "channel": name, "message": "look", "image_url": made_up})
        error = a.recv_error()
        assert (error.get("field"), error["status"]) == ("image_url", 400), (made_up, error)
    b.assert_no_frame("message", message="look")
