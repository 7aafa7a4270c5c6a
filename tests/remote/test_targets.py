"""Where relays may connect (``RemoteTargets``) and what a stored host looks like (``normalise_host``).

Unit tests with a fake resolver: no network, and every answer of a name is under the test's control.
"""

from __future__ import annotations

import ipaddress

import pytest

from portal.core.errors import BadRequest
from portal.core.net import BlockedDestination, UpstreamError
from portal.remote.targets import RemoteTargets, Target, normalise_host
from tests import aio


class FakeResolver:
    """Answers from a table and records every lookup; unknown names fail like a real resolver."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


def resolve(targets: RemoteTargets, host: str, port: int = 22, *, trusted: bool = False) -> Target:
    return aio.run(targets.resolve(host, port, trusted=trusted))


def refused(targets: RemoteTargets, host: str, *, trusted: bool = False) -> str:
    with pytest.raises(BlockedDestination) as info:
        resolve(targets, host, trusted=trusted)
    assert info.value.status == 400
    return info.value.message


NAMES = FakeResolver(
    {
        "nas.lan": ["192.168.1.20"],
        "cgnat.lan": ["100.64.3.4"],
        "ula.lan": ["fd12:3456::7"],
        "public.example": ["93.184.216.34"],
        "loop.example": ["127.0.0.1"],
        "metadata.example": ["169.254.169.254"],
        "metadata6.example": ["fd00:ec2::254"],
        "mixed.example": ["10.0.0.5", "169.254.169.254"],
        "scoped.example": ["fe80::1%eth0"],
        "empty.example": [],
    }
)

ALWAYS_REFUSED = [
    ("169.254.169.254", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("[::ffff:169.254.169.254]", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("metadata.example", "metadata"),
    ("metadata6.example", "metadata"),
    ("mixed.example", "metadata"),
    ("scoped.example", "link-local"),
]


# -- the address policy --------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["192.168.1.20", "10.1.2.3", "172.16.0.9", "100.64.3.4", "fd12:3456::7", "nas.lan"])
def test_private_addresses_are_allowed_by_default(host: str) -> None:
    target = resolve(RemoteTargets(resolver=NAMES), host, 2222)
    assert target.host == host and target.port == 2222
    assert target.address == NAMES.answers.get(host, [host])[0]
    assert not ipaddress.ip_address(target.address).is_global


def test_the_relay_connects_to_the_checked_address_of_a_name() -> None:
    resolver = FakeResolver({"nas.lan": ["192.168.1.20", "192.168.1.21"]})
    target = resolve(RemoteTargets(resolver=resolver), "nas.lan", 5900)
    assert target == Target("nas.lan", 5900, "192.168.1.20")
    assert resolver.calls == [("nas.lan", 5900)]  # resolved once, no second lookup to race with


def test_address_literals_are_not_looked_up() -> None:
    resolver = FakeResolver({})
    assert resolve(RemoteTargets(resolver=resolver), "10.9.8.7").address == "10.9.8.7"
    assert resolver.calls == []


def test_public_addresses_are_allowed() -> None:
    assert resolve(RemoteTargets(resolver=NAMES), "public.example").address == "93.184.216.34"
    assert resolve(RemoteTargets(resolver=NAMES), "8.8.8.8", 53).address == "8.8.8.8"


def test_private_addresses_can_be_switched_off_for_users_but_not_for_services() -> None:
    targets = RemoteTargets(allow_private=False, resolver=NAMES)
    for host in ("192.168.1.20", "nas.lan", "cgnat.lan", "fd12:3456::7"):
        assert "private" in refused(targets, host) or "shared" in refused(targets, host)
        assert resolve(targets, host, trusted=True).host == host
    assert resolve(targets, "public.example").address == "93.184.216.34"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "loop.example", "::ffff:127.0.0.1", "2130706433"])
def test_loopback_is_refused_for_users_unless_allowed(host: str) -> None:
    assert "loopback" in refused(RemoteTargets(resolver=NAMES), host)
    assert resolve(RemoteTargets(allow_loopback=True, resolver=NAMES), host).host == host
    assert resolve(RemoteTargets(resolver=NAMES), host, trusted=True).host == host


@pytest.mark.parametrize(("host", "reason"), ALWAYS_REFUSED)
def test_metadata_link_local_unspecified_multicast_and_reserved_are_always_refused(host: str, reason: str) -> None:
    for targets in (
        RemoteTargets(resolver=NAMES),
        RemoteTargets(allow_private=True, allow_loopback=True, resolver=NAMES),
    ):
        assert reason in refused(targets, host)
        assert reason in refused(targets, host, trusted=True)


def test_one_bad_address_among_a_names_answers_refuses_the_name() -> None:
    message = refused(RemoteTargets(resolver=NAMES), "mixed.example")
    assert message == "Destination not allowed: mixed.example is a cloud metadata address"


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_ports_outside_the_tcp_range_are_refused(port: int) -> None:
    with pytest.raises(BadRequest) as info:
        resolve(RemoteTargets(resolver=NAMES), "10.0.0.1", port)
    assert info.value.extra == {"field": "port"}


def test_names_that_do_not_resolve_are_an_upstream_error() -> None:
    for host in ("nowhere.example", "empty.example"):
        with pytest.raises(UpstreamError) as info:
            resolve(RemoteTargets(resolver=NAMES), host)
        assert info.value.status == 502
        assert info.value.message == f"Could not resolve the host {host}"


# -- host names as stored ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.168.1.100", "192.168.1.100"),
        ("  NAS.Example.LAN  ", "nas.example.lan"),
        ("nas.example.lan.", "nas.example.lan"),
        ("my_host-01", "my_host-01"),
        ("::1", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:0db8:0000::0001", "2001:db8::1"),
    ],
)
def test_normalise_host_accepts_names_and_addresses(given: str, stored: str) -> None:
    assert normalise_host(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "http://x",
        "ssh://nas.lan",
        "nas.lan/path",
        "a b",
        "nas .lan",
        "nas.lan:22",
        "10.0.0.1:22",
        "[::1]:22",
        "user@nas.lan",
        "nas..lan",
        "-nas.lan",
        "nas-.lan",
        "a" * 64 + ".lan",
        "x." * 130 + "lan",
        "nas\nlan",
        "nas\x00lan",
        "ünïcode.lan",
    ],
)
def test_normalise_host_refuses_schemes_paths_ports_spaces_and_empty(given: str) -> None:
    with pytest.raises(BadRequest) as info:
        normalise_host(given)
    assert info.value.status == 400
    assert info.value.extra == {"field": "host"}
    assert "without scheme or port" in info.value.message
