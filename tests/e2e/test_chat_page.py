"""The chat page with two (or three) people at once: live messages, reactions, edits, replies,
typing, images, polls, blocking, channels and unread badges, pins, moderation, link previews.

Each test works in channels it creates, so the shared portal's ``general`` stays quiet. The chat
allows 5 messages per 5 seconds per user: the conversations below spread their messages between
the participants.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.chat.test_link_preview import PageServer, og_page, send
from tests.chat.wsclient import connect
from tests.conftest import UserClient, client_for, login
from tests.e2e.conftest import PageErrors, cookie_session, shot, unique_ip
from tests.portal_server import PortalServer

pytestmark = pytest.mark.e2e


def new_channel(owner: UserClient, prefix: str = "e2e") -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    resp = owner.post("/api/chat/channels", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


def open_chat(new_context: Callable[..., Any], base_url: str, user: UserClient, channel: str, **options: Any) -> Any:
    page = new_context(**options).new_page()
    cookie_session(page, base_url, user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/chat#{channel}")
    wait_joined(page, channel)
    return page


def wait_joined(page: Any, channel: str) -> None:
    expect(page.locator("#conn-status")).to_have_text("Live")
    expect(page.locator("#chat-name")).to_have_text(channel)
    expect(page.locator("#message-input")).to_be_enabled()


def say(page: Any, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")
    expect(message(page, text)).to_have_count(1)


def message(page: Any, text: str) -> Any:
    """The message whose own text (not a quoted reply) contains ``text``."""
    return page.locator("#message-list li.message").filter(has=page.locator(".msg-text", has_text=text))


def unread(user: UserClient, channel: str, wanted: int, within: float = 5.0) -> int:
    """The user's unread count for ``channel``, polled until it equals ``wanted`` (or time is up)."""
    deadline = time.monotonic() + within
    while True:
        channels = user.get("/api/chat/channels").json()["channels"]
        count = int(next(c for c in channels if c["name"] == channel)["unread_count"])
        if count == wanted or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def picture(folder: Path) -> Path:
    path = folder / "square.png"
    if not path.exists():
        Image.new("RGB", (48, 32), (220, 40, 90)).save(path)
    return path


def tool(page: Any, text: str, name: str) -> Any:
    item = message(page, text)
    item.hover()
    return item.get_by_role("button", name=name, exact=True)


def test_two_people_talk(
    new_context: Callable[..., Any], base_url: str, make_user: Callable[..., UserClient], tmp_path: Path
) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    channel = new_channel(alice)
    a = open_chat(new_context, base_url, alice, channel)
    b = open_chat(new_context, base_url, bob, channel)
    expect(a.locator("#user-list")).to_contain_text(bob.username)
    third = connect(base_url, carol.token)
    third.join(channel)

    # A types (B sees it) and says hello: B sees the message live, under A's name
    a.locator("#message-input").press_sequentially("Hello from Alice", delay=10)
    expect(b.locator("#typing")).to_have_text(f"{alice.username} is typing…")
    a.press("#message-input", "Enter")
    hello_b = message(b, "Hello from Alice")
    expect(hello_b.locator(".msg-author")).to_have_text(alice.username)
    expect(b.locator("#typing")).to_have_text("")  # the message ends the typing notice

    # someone who types but sends nothing: the notice expires by itself (checked further down)
    third.send_json({"type": "typing", "channel": channel})
    expect(b.locator("#typing")).to_have_text(f"{carol.username} is typing…")

    # B reacts; A sees the count
    tool(b, "Hello from Alice", "Add reaction").click()
    shot(b, "e2e-chat-emoji-picker")
    b.get_by_role("menuitem", name="React with 👍").click()
    reaction_a = message(a, "Hello from Alice").locator(".reaction")
    expect(reaction_a).to_have_text("👍1")
    expect(hello_b.locator(".reaction.mine")).to_have_count(1)
    reaction_a.click()  # A adds the same reaction by clicking it
    expect(hello_b.locator(".reaction")).to_have_text("👍2")

    # A edits the message inline; B sees the new text
    tool(a, "Hello from Alice", "Edit").click()
    editor = a.locator(".msg-editor textarea")
    editor.fill("Hello from Alice, edited")
    editor.press("Enter")
    expect(message(b, "Hello from Alice, edited").locator(".msg-text")).to_have_text("Hello from Alice, edited")
    expect(message(b, "Hello from Alice, edited").locator(".msg-edited")).to_have_text("(edited)")

    # B replies: the composer says so, and both see the quoted preview
    tool(b, "Hello from Alice, edited", "Reply").click()
    expect(b.locator("#reply-bar")).to_contain_text(f"Replying to {alice.username}")
    b.set_input_files("#image-input", str(picture(tmp_path)))
    shot(b, "e2e-chat-composer-reply-image")
    b.click("#image-remove")
    say(b, "A reply from Bob")
    for page in (a, b):
        quote = message(page, "A reply from Bob").locator(".reply-quote")
        expect(quote).to_contain_text(alice.username)
        expect(quote).to_contain_text("Hello from Alice, edited")
    expect(b.locator("#reply-bar")).to_be_hidden()

    # A deletes the first message: it disappears for B
    tool(a, "Hello from Alice, edited", "Delete").click()
    expect(message(b, "Hello from Alice, edited")).to_have_count(0)
    expect(message(a, "Hello from Alice, edited")).to_have_count(0)

    # an image: previewed, uploaded on send, shown to B
    a.set_input_files("#image-input", str(picture(tmp_path)))
    expect(a.locator("#image-preview")).to_be_visible()
    expect(a.locator("#image-preview-img")).to_have_attribute("src", re.compile(r"^blob:"))
    a.fill("#message-input", "A picture")
    a.click("#send-button")
    image_b = message(b, "A picture").locator(".msg-image img")
    expect(image_b).to_have_attribute("src", re.compile(r"^/static/uploads/chat/[0-9a-f]{32}\.png$"))
    expect(image_b).to_have_js_property("naturalWidth", 48)
    expect(a.locator("#image-preview")).to_be_hidden()

    # a poll by A; B votes; A sees the count
    a.click("#poll-button")
    a.fill("#poll-question", "Lunch?")
    options = a.locator("#poll-options input")
    options.nth(0).fill("Pizza")
    options.nth(1).fill("Salad")
    a.click("#poll-add-option")
    options.nth(2).fill("Soup")
    a.check("#poll-multiple")
    a.fill("#poll-duration", "30")
    shot(a, "e2e-chat-poll-dialog")
    a.click("#poll-create")
    poll_b = b.locator(".poll").filter(has_text="Lunch?")
    expect(poll_b.locator(".poll-meta")).to_contain_text("Multiple choice")
    poll_b.locator(".poll-option").filter(has_text="Salad").click()
    poll_a = a.locator(".poll").filter(has_text="Lunch?")
    expect(poll_a.locator(".poll-option").filter(has_text="Salad").locator(".poll-count")).to_have_text("1 · 100%")
    expect(poll_a.locator(".poll-total")).to_have_text("1 voter")
    expect(poll_b.locator(".poll-option.chosen")).to_have_text(re.compile("Salad"))
    poll_a.get_by_role("button", name="Close poll").click()
    expect(poll_b.locator(".poll-meta")).to_contain_text("closed")
    expect(poll_b.locator(".poll-option").first).to_be_disabled()
    expect(b.locator("#typing")).to_have_text("", timeout=6_000)  # Carol's notice expired

    shot(a, "e2e-chat-desktop-light")
    a.click("#theme-toggle")
    expect(a.locator("html")).to_have_attribute("data-theme", "dark")
    message(a, "A reply from Bob").hover()
    shot(a, "e2e-chat-desktop-dark")

    # B blocks A from A's name: A's messages vanish, new ones never arrive
    message(b, "A picture").locator(".msg-author").click()
    b.get_by_role("menuitem", name=f"Block {alice.username}").click()
    expect(b.locator("#toasts")).to_contain_text(f"You blocked {alice.username}")
    expect(message(b, "A picture")).to_have_count(0)
    expect(b.locator("#blocked-list")).to_contain_text(alice.username)
    say(a, "Bob cannot see this")
    third.say(channel, "Carol was here")
    third.close()
    expect(message(b, "Carol was here")).to_have_count(1)  # delivered after A's message, in order
    expect(message(b, "Bob cannot see this")).to_have_count(0)

    # unblocking brings the history back
    b.click("#blocked-panel summary")
    b.locator("#blocked-list").get_by_role("button", name="Unblock").click()
    expect(message(b, "Bob cannot see this")).to_have_count(1)
    expect(b.locator("#blocked-count")).to_have_text("0")


def test_channels_unread_pins_and_moderation(
    new_context: Callable[..., Any], base_url: str, make_user: Callable[..., UserClient]
) -> None:
    bob, mod, owner = make_user(), make_user("moderator"), make_user()
    first, second = new_channel(owner, "room"), new_channel(owner, "side")  # a channel's creator moderates it
    b = open_chat(new_context, base_url, bob, first)
    m = open_chat(new_context, base_url, mod, first)

    # create a channel from the form: it opens
    b.click("#channel-new")
    made = f"made-{secrets.token_hex(3)}"
    b.fill("#channel-name", made)
    b.click("#channel-create")
    wait_joined(b, made)
    expect(b.locator(f'#channel-list a[data-channel="{made}"]')).to_have_attribute("aria-current", "page")

    # a message in another channel shows as unread for B, and opening it clears the badge
    with connect(base_url, mod.token) as elsewhere:
        elsewhere.join(second)
        elsewhere.say(second, "News on the side")
    b.evaluate("window.dispatchEvent(new Event('focus'))")  # the list refreshes on focus (and every 15 s)
    badge = b.locator(f'#channel-list a[data-channel="{second}"] .unread')
    expect(badge).to_have_text("1")
    b.click(f'#channel-list a[data-channel="{second}"]')
    wait_joined(b, second)
    expect(message(b, "News on the side")).to_have_count(1)
    expect(badge).to_have_count(0)
    b.evaluate("window.dispatchEvent(new Event('focus'))")
    expect(b.locator(f'#channel-list a[data-channel="{second}"]')).to_have_attribute("aria-current", "page")
    expect(badge).to_have_count(0)
    assert unread(bob, second, wanted=0) == 0  # the page marked the channel read on the server

    # back to the first channel: the moderator pins a message, B sees it in the pinned panel
    b.click(f'#channel-list a[data-channel="{first}"]')
    wait_joined(b, first)
    expect(b.locator("#user-list")).to_contain_text(mod.username)
    say(m, "Read the rules")
    expect(message(b, "Read the rules")).to_have_count(1)
    expect(tool(b, "Read the rules", "Pin")).to_have_count(0)  # users cannot pin
    tool(m, "Read the rules", "Pin").click()
    expect(b.locator("#pinned-count")).to_have_text("1")
    b.click("#toggle-pinned")
    expect(b.locator("#pinned-list")).to_contain_text("Read the rules")
    expect(b.locator("#pinned-list")).to_contain_text(f"pinned by {mod.username}")
    expect(message(b, "Read the rules").locator(".msg-pin-flag")).to_be_visible()

    # too fast: the server's rate limit (5 per 5 s, in windows) is shown
    for n in range(11):
        b.fill("#message-input", f"burst {n}")
        b.press("#message-input", "Enter")
    expect(b.locator("#toasts")).to_contain_text("Slow down!")
    expect(message(m, "burst 0")).to_have_count(1)

    # moderators delete anyone's message, and unpin from the panel
    tool(m, "burst 1", "Delete").click()
    expect(message(b, "burst 1")).to_have_count(0)
    m.click("#toggle-pinned")
    m.locator("#pinned-list").get_by_role("button", name="Unpin").click()
    expect(b.locator("#pinned-count")).to_have_text("0")
    expect(message(b, "Read the rules").locator(".msg-pin-flag")).to_have_count(0)
    m.click("#pinned-close")

    # the moderator times B out from B's name; B's next message is refused with the reason
    message(m, "burst 0").locator(".msg-author").click()
    shot(m, "e2e-chat-name-menu")
    m.get_by_role("menuitem", name="Time out for 10 minutes").click()
    expect(m.locator("#toasts")).to_contain_text(f"{bob.username} is timed out for 10 minutes.")
    b.fill("#message-input", "am I muted?")
    b.press("#message-input", "Enter")
    expect(b.locator("#toasts")).to_contain_text("You are timed out")
    expect(b.locator("#message-input")).to_have_value("am I muted?")  # the refused text is given back
    expect(message(m, "am I muted?")).to_have_count(0)

    # and a plain user's name menu offers no moderation
    message(b, "Read the rules").locator(".msg-author").click()
    expect(b.get_by_role("menuitem", name=f"Block {mod.username}")).to_be_visible()
    expect(b.get_by_role("menuitem", name="Time out for 10 minutes")).to_have_count(0)


def test_small_screen(new_context: Callable[..., Any], base_url: str, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    channel = new_channel(alice, "phone")
    with connect(base_url, bob.token) as other:
        other.join(channel)
        other.say(channel, "A fairly long message that has to wrap on a phone screen without scrolling sideways")
        other.say(channel, "https://example.invalid/a/really/long/path/that/should/wrap/nicely/too")
    page = open_chat(new_context, base_url, alice, channel, viewport={"width": 375, "height": 740})
    expect(message(page, "fairly long message")).to_have_count(1)

    def width() -> int:
        return int(page.evaluate("document.documentElement.scrollWidth"))

    assert width() <= 375
    expect(page.locator("#chat-channels")).not_to_be_in_viewport()
    shot(page, "e2e-chat-375")
    page.click("#toggle-channels")
    expect(page.locator("#chat-channels")).to_be_in_viewport()
    expect(page.locator(f'#channel-list a[data-channel="{channel}"]')).to_be_visible()
    page.wait_for_timeout(300)
    shot(page, "e2e-chat-375-channels")
    page.click("#chat-scrim", position={"x": 360, "y": 300})
    expect(page.locator("#chat-channels")).not_to_be_in_viewport()
    page.click("#toggle-users")
    expect(page.locator("#user-list")).to_contain_text(alice.username)
    expect(page.locator("#chat-users")).to_be_in_viewport()
    page.wait_for_timeout(300)  # the drawer slides in
    shot(page, "e2e-chat-375-users")
    page.keyboard.press("Escape")
    expect(page.locator("#chat-users")).not_to_be_in_viewport()
    page.click("#theme-toggle")
    say(page, "Dark and small")
    assert width() <= 375
    shot(page, "e2e-chat-375-dark")


# -- link previews: a portal allowed to reach one local page server --------------------------------
def og_route(h: BaseHTTPRequestHandler) -> None:
    send(
        h,
        og_page(
            "Local &lt;b&gt;OG&lt;/b&gt; Title",
            description="A page served by the test",
            image="https://cdn.example/card.png",
            site="Local Site",
        ),
    )


@pytest.fixture(scope="module")
def own_portal() -> Iterator[tuple[PortalServer, PageServer]]:
    """A portal of this module: it may fetch previews from one local page server, and has no chat rate limit."""
    pages = PageServer({"/og": og_route})
    env = {"PORTAL_SSRF_ALLOW_LOOPBACK_PORTS": str(pages.port), "PORTAL_CHAT_MESSAGE_RATE": "10000 per 5 seconds"}
    server = PortalServer(env=env).start()
    try:
        yield server, pages
    finally:
        server.stop()
        pages.close()


@pytest.fixture
def own_page(browser: Any, own_portal: tuple[PortalServer, PageServer]) -> Iterator[tuple[Any, UserClient]]:
    """A page signed in to the module's portal as a new user, and that user's API client."""
    server = own_portal[0]
    root_token = login(server.base_url, server.admin_user, server.admin_password).json()["token"]
    username, password = "op" + secrets.token_hex(4), "pw-" + secrets.token_hex(8)
    with client_for(server.base_url, root_token) as root:
        created = root.post("/api/users", json={"username": username, "password": password})
        assert created.status_code == 201, created.text
    token = login(server.base_url, username, password).json()["token"]
    user = UserClient(created.json()["id"], username, password, "user", token, client_for(server.base_url, token))
    errors = PageErrors()
    context = browser.new_context(base_url=server.base_url, extra_http_headers={"X-Forwarded-For": unique_ip()})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors.watch(page)
    cookie_session(page, server.base_url, username, password)
    yield page, user
    context.close()
    user.http.close()
    assert not errors.items, "browser errors:\n" + "\n".join(errors.items)


def test_load_older_messages(own_page: tuple[Any, UserClient], own_portal: tuple[PortalServer, PageServer]) -> None:
    page, user = own_page
    server = own_portal[0]
    channel = new_channel(user, "long")
    with connect(server.base_url, user.token) as sender:
        sender.join(channel)
        for n in range(1, 61):
            sender.send_json({"type": "message", "channel": channel, "message": f"line {n:02d}"})
        sender.recv_until("message", message="line 60")
    page.goto(f"/chat#{channel}")
    wait_joined(page, channel)
    items = page.locator("#message-list li.message")
    expect(items).to_have_count(50)
    expect(items.first.locator(".msg-text")).to_have_text("line 11")
    expect(message(page, "line 60")).to_be_in_viewport()  # opened at the newest message
    expect(page.locator("#history-start")).to_be_hidden()
    page.click("#load-older")
    expect(items).to_have_count(60)
    expect(items.first.locator(".msg-text")).to_have_text("line 01")
    expect(page.locator("#load-older")).to_be_hidden()
    expect(page.locator("#history-start")).to_be_visible()
    expect(message(page, "line 01")).not_to_be_in_viewport()  # the reader stays where they were


def test_link_preview_card(own_page: tuple[Any, UserClient], own_portal: tuple[PortalServer, PageServer]) -> None:
    page, _ = own_page
    server, pages = own_portal
    page.goto("/chat#general")
    wait_joined(page, "general")
    url = f"{pages.base}/og"
    say(page, f"Look at {url}, it is nice")
    item = message(page, "Look at")
    link = item.locator(".msg-text a")
    expect(link).to_have_attribute("href", url)
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    card = item.locator("a.link-card")
    expect(card.locator(".link-card-title")).to_have_text("Local <b>OG</b> Title")
    expect(card.locator("b")).to_have_count(0)
    expect(card.locator(".link-card-desc")).to_have_text("A page served by the test")
    expect(card.locator(".link-card-site")).to_have_text("Local Site")
    expect(card.locator("img")).to_have_count(0)  # a third-party image: not loaded (img-src 'self')
    assert pages.hits("/og") == 1
    shot(page, "e2e-chat-link-preview")
    assert httpx.get(server.base_url + "/chat", follow_redirects=False).status_code == 303


def test_chat_tab_and_reconnection(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    routes: list[Any] = []

    def relay(route: Any) -> None:  # pass the socket through, keeping a handle on it
        route.connect_to_server()
        routes.append(route)

    page.route_web_socket(re.compile(r"/ws/chat$"), relay)
    page.goto("/dashboard")
    page.click('.tab[data-nav="chat"]')
    page.wait_for_url(re.compile(r"/chat#general$"))
    expect(page.locator('.tab[data-nav="chat"]')).to_have_attribute("aria-current", "page")
    wait_joined(page, "general")

    # the server goes away: the page says so, reconnects by itself and joins the channel again
    routes[-1].close(code=1012, reason="service restart")
    expect(page.locator("#conn-status")).to_contain_text("Reconnecting")
    wait_joined(page, "general")
    assert len(routes) == 2
    say(page, f"back again {secrets.token_hex(2)}")
