"""The Python blocks of docs/guide.md run as written, in order, against the simulated provider.

``ChatOpenAI`` reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` from the environment, so the
guide's code, written for real providers, talks to a simulator serving twins of the catalogue
models it names. A block preceded by ``<!-- guide-test: not run (why) -->`` needs a service
these tests do not start; the TOML block must load with ``from_config``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_routing import default_catalog, from_config
from llm_routing.sim import SimModel, SimulatedProvider

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"
BLOCK = re.compile(r"(<!-- guide-test: not run[^>]*-->\n)?```(\w+)\n(.*?)\n```", re.DOTALL)
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-5-mini")


def blocks(language: str) -> list[tuple[bool, str]]:
    """(runs, code) for each fenced block of ``language``, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    return [(not skip, code) for skip, lang, code in BLOCK.findall(text) if lang == language]


@pytest.fixture
def sim_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedProvider]:
    twins = [SimModel.from_spec(default_catalog().get(f"openai:{m}"), tier=None) for m in MODELS]
    with SimulatedProvider(twins) as sim:
        monkeypatch.setenv("OPENAI_BASE_URL", sim.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sim")
        monkeypatch.delenv("OPENAI_API_BASE", raising=False)
        monkeypatch.chdir(ROOT)
        yield sim


def test_guide_python_blocks_run_in_order(sim_env):
    runnable = [code for runs, code in blocks("python") if runs]
    assert len(runnable) >= 14
    namespace: dict[str, object] = {"__name__": "guide"}
    for number, code in enumerate(runnable, 1):
        try:
            exec(compile(code, f"{GUIDE.name} python block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"guide block {number} failed:\n{code}") from exc
    # The guide's requests reached the simulator (and never a real provider).
    assert sim_env.stats()["models"]["gpt-4o-mini"]["requests_served"] > 0


def test_guide_skips_only_blocks_that_need_a_service():
    skipped = [code for runs, code in blocks("python") if not runs]
    assert len(skipped) == 3
    assert all("redis" in code.lower() or "langfuse" in code.lower() for code in skipped)


def test_guide_config_block_is_a_complete_valid_config(sim_env):
    [(_, text)] = blocks("toml")
    config = tomllib.loads(text)
    # Every table but [langfuse] (it would export to a real Langfuse) and [simulate] (the cli's).
    assert set(config) == {"router", "scheduler", "guard", "budget", "defaults", "models"}
    router = from_config(config)
    assert router.names == ("openai:gpt-4o-mini", "openai:gpt-4.1-nano", "openai:gpt-4.1-mini")
    assert router.invoke("Hello").response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
