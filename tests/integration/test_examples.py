"""Every script in examples/ runs as a user would run it, exits 0 and prints what it promises.

Each is a subprocess (``python examples/<name>.py``) against its own simulated provider, so
these check the scripts exactly as shipped, imports and ``__main__`` included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ("basic_router.py", "lcel_stack.py", "budget.py", "streaming.py", "config_file.py")


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every script started at once (most of each run is importing), one process per script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=EXAMPLES.parent,
            env=env,
        )
        for name in SCRIPTS
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def run(runs: dict[str, subprocess.Popen[str]]) -> Callable[[str], str]:
    def output(name: str) -> str:
        process = runs[name]
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name} exited {process.returncode}:\n{stdout}\n{stderr}"
        return stdout

    return output


def test_every_example_script_has_a_test():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(SCRIPTS)


@pytest.mark.slow
def test_basic_router_sends_each_document_to_the_smallest_model_that_fits(run):
    out = run("basic_router.py")
    assert "a question             -> openai:gpt-4o-mini (skipped: none)" in out
    assert "a 150k-token report    -> openai:gpt-5-mini (skipped: openai:gpt-4o-mini)" in out
    assert "a 450k-token archive   -> openai:gpt-4.1-mini" in out
    assert "a 1.2M-token dump      -> no model fits:" in out
    # Refused by the guards, the 1.2M-token dump never reached the simulator.
    assert "{'gpt-4o-mini': 1, 'gpt-5-mini': 1, 'gpt-4.1-mini': 1}" in out


@pytest.mark.slow
def test_lcel_stack_falls_back_instead_of_waiting_for_the_primarys_pace(run):
    out = run("lcel_stack.py")
    assert sum(line.startswith("question ") for line in out.splitlines()) == 6
    # RPM 4 is paced as one request every 15 s: the first question goes to the primary.
    assert "openai:gpt-4o-mini     1 calls" in out
    assert "openai:gpt-4.1-nano    5 calls" in out
    assert "scheduler refusals (fallbacks instead of waits): 5" in out
    assert "gpt-4o-mini got 1 requests and answered 0 with a 429" in out


@pytest.mark.slow
def test_budget_refuses_the_call_that_could_overspend_a_tag_budget(run):
    out = run("budget.py")
    assert "search call 2 refused before sending: day (tag 'team:search') budget" in out
    assert "warning: llm_routing: day (tag 'team:search') budget" in out
    assert "team:chat    2 calls" in out
    assert "team:search  2 calls" in out
    assert "refused calls: 1" in out


@pytest.mark.slow
def test_streaming_falls_back_before_the_first_chunk_and_not_after(run):
    out = run("streaming.py")
    assert "-> served by openai:gpt-4o-mini" in out
    assert "-> served by openai:gpt-4.1-mini" in out
    assert "-> failed after the first chunk:" in out
    assert "the router does not fall back once output has been yielded" in out
    assert "quota fallbacks: 2" in out


@pytest.mark.slow
def test_config_file_builds_the_router_from_toml_and_names_a_typo(run):
    out = run("config_file.py")
    assert "router.toml: Router(openai:gpt-4o-mini -> openai:gpt-4o -> openai:gpt-4.1-mini)" in out
    assert "settings: max_wait=30, tier=tier1" in out
    assert "characters -> openai:gpt-4.1-mini" in out
    assert "router.max_wiat: unknown key; did you mean 'max_wait'?" in out
