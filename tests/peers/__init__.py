"""Real servers for tests and benchmarks: OpenSSH sshd, Xvfb + x11vnc, a TCP echo/firehose server.

Each peer is a class with ``start()``/``stop()`` that is also a context manager; the pytest
fixtures live in :mod:`tests.peers.fixtures` (loaded by ``tests/conftest.py``). The classes raise
:class:`PeerUnavailable` when a system dependency is missing; the fixtures turn that into a skip,
or into a failure when ``CI=true``.
"""

from tests.peers.base import PeerUnavailable

__all__ = ["PeerUnavailable"]
