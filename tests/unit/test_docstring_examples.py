"""The ``Example:`` blocks in public docstrings run, and print what they say they print.

They use ``langchain_openai`` clients with a dummy key: every example that calls a model is
refused by a decorator before any request is sent, so nothing leaves the process.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("langchain_openai", reason="the examples use ChatOpenAI: pip install '.[dev]'")
pytest.importorskip("langchain.chat_models", reason="from_config builds models by name")

MODULES = [
    "llm_routing.errors",
    "llm_routing.guard",
    "llm_routing.router.from_config",
    "llm_routing.catalog.lookup",
    "llm_routing.catalog.spec",
    "llm_routing.tokens.counting",
    "llm_routing.router",
    "llm_routing.schedule.scheduler",
    "llm_routing.cost.tracker",
    "llm_routing.middleware",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{name} has no docstring examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed
