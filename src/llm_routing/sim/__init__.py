"""A simulated OpenAI-compatible provider: real HTTP, real limits, faults on demand.

Owns the simulator (``SimulatedProvider``, its models, limiter, faults and latency); it does
not route, schedule or price anything, it is what those pieces are tested against, so it
imports nothing of the package but ``catalog`` and ``tokens`` (the demo that drives a router
over it is ``llm_routing.cli.demo``).

HTTP stack: Starlette on uvicorn (the ``sim`` extra). ASGI gives streaming SSE responses and
raw access to the connection for faults; uvicorn's asyncio server holds thousands of concurrent
connections in one thread and runs in a background thread with its own event loop (no nested
loop tricks, no signal handlers), so tests drive it with real clients such as ``ChatOpenAI``.

Limits are enforced the way providers document (``SimModel(enforcement="sliding" |
"token_bucket" | "quantized")``, what counts per provider, limit groups; a bare model is
OpenAI-shaped: quantized, refused requests count), from
``llm_routing.catalog.enforcement`` rather than from the scheduler's own model.

The same simulator answers in process, without HTTP and in any clock (a ``VirtualClock`` runs
simulated minutes in seconds), through ``SimChatModel`` (``sim.inprocess``), a LangChain chat
model raising what ``ChatOpenAI`` raises for the same answers.

Recorded answers, for tests that check what a model answered (tool arguments, JSON keys),
are ``SimModel(replies=[Reply(when="magic_function(3)", tool_calls=[{"name": "magic_function",
"args": {"input": 3}}])])``: the first reply matching the last user message answers instead of
invented text (``sim.replies``).

```python
with SimulatedProvider([SimModel(name="gpt-4o-mini", rpm=3, tpm=10_000)], seed=0) as sim:
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=sim.base_url, api_key="sim", max_retries=0)
    llm.invoke("hi")
    sim.stats()["models"]["gpt-4o-mini"]["requests_served"]  # 1
```
"""

from typing import TYPE_CHECKING, Any

from llm_routing.sim.faults import FAULT_KINDS, FaultPlan
from llm_routing.sim.latency import Latency
from llm_routing.sim.limiter import Decision, ProviderLimiter, SlidingWindowLimiter
from llm_routing.sim.model import SimModel
from llm_routing.sim.replies import Reply
from llm_routing.sim.schema_gen import sample_from_schema

if TYPE_CHECKING:
    from llm_routing.sim.inprocess import SimChatModel
    from llm_routing.sim.server import SimulatedProvider, default_models

__all__ = [
    "FAULT_KINDS",
    "Decision",
    "FaultPlan",
    "Latency",
    "ProviderLimiter",
    "Reply",
    "SimChatModel",
    "SimModel",
    "SimulatedProvider",
    "SlidingWindowLimiter",
    "default_models",
    "sample_from_schema",
]


# The HTTP server needs the ``sim`` extra (Starlette, uvicorn); the models, limiter and faults do
# not, so ``llm-routing simulate`` (virtual time, no HTTP) runs on the core install.
_SERVER_NAMES = frozenset({"SimulatedProvider", "default_models"})


def __getattr__(name: str) -> Any:
    if name == "SimChatModel":  # LangChain's BaseChatModel: loaded only when asked for
        from llm_routing.sim.inprocess import SimChatModel

        return SimChatModel
    if name in _SERVER_NAMES:
        try:
            from llm_routing.sim import server
        except ImportError as exc:
            raise ImportError(
                f"llm_routing.sim.{name} serves HTTP with Starlette and uvicorn, which are not "
                f"installed ({exc}); install them with: pip install 'llm-routing[sim]'"
            ) from exc
        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
