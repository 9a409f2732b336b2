"""The simulated provider as the tests use it: in a thread or a child process, and a client for it.

Most tests share one `SimulatedProvider` per module or session (starting uvicorn costs tens of
milliseconds) and reset it per test, so no test sees another's windows, counters or faults:
`serving` is the body of the shared fixture, `fresh` of the per-test one. A test that measures
CPU or must not share the GIL with the simulator uses `SimProcess` (the package's own
child-process simulator, re-exported so tests have one import home for both).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llm_routing.sim import SimModel, SimulatedProvider
from llm_routing.sim.process import SimProcess

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = ["SimProcess", "chat", "fresh", "made_up_words", "received", "served", "serving"]


def serving(
    models: Iterable[SimModel] | None = None, **options: Any
) -> Iterator[SimulatedProvider]:
    """Body of a (module- or session-scoped) fixture: a started simulator, stopped afterwards.

    ``options`` are `SimulatedProvider`'s (``seed`` defaults to 0, so faults and jitter repeat).
    """
    options.setdefault("seed", 0)
    with SimulatedProvider(models, **options) as sim:
        yield sim


def fresh(sim: SimulatedProvider) -> Iterator[SimulatedProvider]:
    """Body of a per-test fixture over a shared simulator: empty windows, counters, no faults.

    Reset after the test too, so a test that set faults cannot leave them for a test that
    uses the shared simulator without this fixture.
    """
    sim.reset()
    yield sim
    sim.reset()


def chat(sim: SimulatedProvider | SimProcess, model: str, **kwargs: Any) -> ChatOpenAI:
    """A ``ChatOpenAI`` for ``model`` on the simulator, SDK retries off (the router's job)."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=model, base_url=sim.base_url, api_key="sim", max_retries=0, **kwargs)


def received(sim: SimulatedProvider, model: str) -> int:
    """Requests that reached ``model`` (429s and faults included)."""
    return int(sim.stats()["models"][model]["requests_received"])


def served(sim: SimulatedProvider, model: str) -> int:
    """Requests ``model`` answered."""
    return int(sim.stats()["models"][model]["requests_served"])


def made_up_words(n: int, seed: int = 0) -> str:
    """``n`` random lowercase words of 5-9 letters: about 3.8 tokens a word, the same each run.

    50,000 of them are about 190,000 tokens: over a 128k window, under 400k and 1M.
    """
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(5, 9))) for _ in range(n)
    )
