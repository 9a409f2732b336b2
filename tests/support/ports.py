"""Loopback ports for servers the tests and benchmarks start themselves."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a server started next).

    Also a port that refuses connections, for tests of an unreachable service: the socket that
    found it is closed again before this returns.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
