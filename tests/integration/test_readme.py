"""Every Python block of README.md runs as written, in order, against the simulated provider.

The blocks are written for real providers; they read keys and endpoints the way the README
says (``api_key=os.environ[...]``, ``OPENAI_BASE_URL``, ``REDIS_URL``, Langfuse's variables).
Here those point at loopback services the test starts: the simulator serving catalogue twins,
a real ``redis-server``, and an OTLP receiver standing in for Langfuse. The blocks run in a
child process, so what they change process-wide (the shared catalogue, Langfuse's client, the
environment) cannot leak into other tests; a prelude there refuses any connection that
leaves loopback, as the suite's own guard does. Nothing is skipped: a block that stops running
fails this test, with the block's number and the error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llm_routing import default_catalog
from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.redis import RedisServer, running_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
SERVED = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")

PRELUDE = r"""
import ipaddress, json, socket, sys

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _local(address):
    if isinstance(address, (str, bytes)):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _local(address):
            raise ConnectionRefusedError(f"README block tried to leave loopback: {address!r}")
        return real(self, address)
    return connect


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)

namespace = {"__name__": "__main__"}
for number, code in enumerate(json.loads(sys.stdin.read()), 1):
    print(f"--- README python block {number}", flush=True)
    exec(compile(code, f"README.md python block {number}", "exec"), namespace)
print("--- all blocks ran", flush=True)
"""


def readme_blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [code for lang, code in BLOCK.findall(text) if lang == language]


class _OtlpSink(BaseHTTPRequestHandler):
    """Stands in for Langfuse's OTLP endpoint: answers 200, keeps each request's path."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def langfuse_sink() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    yield from running_server()


@pytest.fixture
def sim() -> Iterator[SimulatedProvider]:
    catalog = default_catalog()
    twins = [SimModel.from_spec(catalog.get(f"openai:{name}"), tier="tier1") for name in SERVED]
    with SimulatedProvider(twins) as provider:
        yield provider


def test_readme_has_the_blocks_this_test_runs():
    blocks = readme_blocks("python")
    assert len(blocks) >= 6
    text = "\n".join(blocks)
    # The ways keys reach the models are shown, not left to docs/guide.md.
    assert 'api_key=os.environ["OPENAI_API_KEY"]' in text
    assert 'base_url=os.environ.get("OPENAI_BASE_URL")' in text
    code = re.sub(r"#.*", "", text)  # comments may say "...", code may not
    assert "..." not in code and "…" not in code  # no sketches with an ellipsis


def test_every_readme_python_block_runs_as_written(sim, redis_server, langfuse_sink, tmp_path):
    blocks = readme_blocks("python")
    # The catalogue block loads LiteLLM's map from the working directory.
    shutil.copy(
        ROOT / "tests" / "data" / "litellm_sample.json",
        tmp_path / "model_prices_and_context_window.json",
    )
    host, port = langfuse_sink.server_address[:2]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LANGFUSE_"))},
        "OPENAI_BASE_URL": sim.base_url,
        "OPENAI_API_KEY": "sim",
        "ANTHROPIC_API_KEY": "unused-the-fallback-is-never-called",
        "GOOGLE_API_KEY": "unused-the-large-context-model-is-never-called",
        "REDIS_URL": redis_server.url,
        "LANGFUSE_PUBLIC_KEY": "pk-readme",
        "LANGFUSE_SECRET_KEY": "sk-readme",
        "LANGFUSE_BASE_URL": f"http://{host}:{port}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    assert result.stdout.rstrip().endswith("--- all blocks ran")
    stats = sim.stats()["models"]
    assert stats["gpt-4o-mini"]["requests_served"] >= 4  # chain, router, tools, Langfuse, Redis
    # The Langfuse block exported its generations to the configured host.
    assert any(path.endswith("/otel/v1/traces") for path in langfuse_sink.paths)  # type: ignore[attr-defined]


def test_readme_commands_are_what_ci_runs():
    text = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "# Run the test suite" in ci
    lines = text.splitlines()
    marker = lines.index("# Run the test suite")
    assert "pytest" in lines[marker + 1]
