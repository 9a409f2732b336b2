"""A private redis-server for tests and benchmarks: free port, temporary directory, no persistence.

The one place that starts redis-server: the tests' fixtures, and the benchmarks (``from
tests.support.redis import ...`` from the repository root). Tests that need Redis skip, saying
how to install it, when the ``redis-server`` binary or the ``redis`` package is missing
(`redis_binary`); a benchmark asks `find_redis_server` and says why it cannot run.
``RedisServer`` can also require a password, be stopped, restarted on the same port and paused
(SIGSTOP), for the tests of a Redis that dies or hangs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

__all__ = [
    "INSTALL_HINT",
    "RedisServer",
    "find_redis_server",
    "free_port",
    "redis_binary",
    "running_server",
]

INSTALL_HINT = (
    "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu) or "
    "`brew install redis` (macOS), and `pip install 'llm-routing[redis]'`, to run the Redis "
    "backend tests"
)


def _answers(port: int, password: str | None = None) -> bool:
    ping = b"PING\r\n" if password is None else f"AUTH {password}\r\nPING\r\n".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(ping)
            return b"+PONG" in sock.recv(64)
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1, in a directory of its own."""

    def __init__(self, binary: str, directory: Path, *, password: str | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.password = password
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port (or on the previous one, for a restart)."""
        for _ in range(5):
            port = self.port or free_port()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--logfile",
                    str(self.directory / "redis.log"),
                    "--databases",
                    "1",
                    *(["--requirepass", self.password] if self.password is not None else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers(port, self.password):
                    self.port = port
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def stop(self) -> None:
        """Kill the server (like a crash: nothing is saved)."""
        process, self.process = self.process, None
        if process is None:
            return
        if self.paused:
            os.kill(process.pid, signal.SIGCONT)
            self.paused = False
        process.kill()
        process.wait(10)

    def restart(self) -> None:
        """Start again on the same port, empty."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a hung Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False


def find_redis_server() -> str | None:
    """The redis-server binary (PATH, or Debian's /usr/bin when PATH is trimmed), or None."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def redis_binary() -> str:
    """The redis-server binary, or skip the test with the install hint."""
    pytest.importorskip("redis", reason=INSTALL_HINT)
    binary = find_redis_server()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    return binary


def running_server() -> Iterator[RedisServer]:
    """Body of a fixture: a started server, stopped and removed afterwards."""
    binary = redis_binary()
    with tempfile.TemporaryDirectory(prefix="llm-routing-redis-") as directory:
        server = RedisServer(binary, Path(directory)).start()
        try:
            yield server
        finally:
            server.stop()
