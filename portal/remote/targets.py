"""Where remote-access relays may connect.

Remote access exists to reach machines on private networks, so private addresses are allowed
(``PORTAL_REMOTE_ALLOW_PRIVATE``). Never allowed: cloud metadata, link-local, multicast,
unspecified and reserved addresses. Loopback (the portal host itself) is open to admin-defined
services, and to users' own connections only with ``PORTAL_REMOTE_ALLOW_LOOPBACK``. A name is
resolved once and the relay connects to the checked address, so DNS cannot change the answer
between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from portal.core.errors import BadRequest
from portal.core.net import BlockedDestination, Resolver, UpstreamError, blocked_reason, parse_address, system_resolver

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)
_PRIVATE_REASONS = frozenset({"a private address", "a shared (carrier-grade NAT) address"})


def normalise_host(host: str) -> str:
    """A host name or address literal as stored; refuses URLs, paths, ports and spaces."""
    host = host.strip().lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if parse_address(bare) is not None and ":" in bare:
        return str(ipaddress.ip_address(bare.split("%", 1)[0]))
    if not _HOSTNAME.match(host):
        raise BadRequest("Invalid host: give a host name or an IP address, without scheme or port", field="host")
    return host.rstrip(".")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    address: str  # the checked address the relay connects to


class RemoteTargets:
    def __init__(self, *, allow_private: bool = True, allow_loopback: bool = False, resolver: Resolver | None = None):
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.resolver = resolver or system_resolver

    def refusal(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, trusted: bool) -> str | None:
        """Why ``address`` is refused, or None. ``trusted`` is for admin-defined services."""
        reason = blocked_reason(address)
        if reason is None:
            return None
        if reason in _PRIVATE_REASONS or (reason == "a non-public address" and not address.is_reserved):
            return None if (self.allow_private or trusted) else reason
        if reason == "a loopback address":
            return None if (self.allow_loopback or trusted) else reason
        return reason

    async def resolve(self, host: str, port: int, *, trusted: bool = False) -> Target:
        if not 0 < port < 65536:
            raise BadRequest(f"Invalid port {port}", field="port")
        literal = parse_address(host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                raw = await self.resolver(host, port)
            except (OSError, ValueError):
                raise UpstreamError(f"Could not resolve the host {host}") from None
            candidates = [ipaddress.ip_address(t.split("%", 1)[0]) for t in raw]
            if not candidates:
                raise UpstreamError(f"Could not resolve the host {host}")
        for address in candidates:
            reason = self.refusal(address, trusted=trusted)
            if reason:
                raise BlockedDestination(f"Destination not allowed: {host} is {reason}")
        return Target(host, port, str(candidates[0]))
