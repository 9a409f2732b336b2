"""A worker process for the ledger lease tests (spawned: importable, top-level functions)."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing.catalog import Catalog, ModelSpec, Price

# $100 / $200 per 1M tokens, so a hold is a readable amount.
SPEC = ModelSpec(
    provider="fake",
    name="fake-model",
    context_window=100_000,
    max_output_tokens=1_000,
    price=Price(input=100, output=200),
)


_STARTED: list[Any] = []


class Hanging(BaseChatModel):
    """A provider that takes the request and never answers: the call stays in flight."""

    model: str = "fake-model"
    max_tokens: int = 500

    @property
    def _llm_type(self) -> str:
        return "hanging"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        _STARTED[0].put("in flight")
        threading.Event().wait()  # until SIGKILL
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])


def call_and_hang(redis_url: str, prefix: str, lease: float, budget: float, started: Any) -> None:
    """Send one call through a CostTracker on a Redis ledger; it hangs until killed."""
    from llm_routing.cost import CostTracker
    from llm_routing.cost.redis_ledger import RedisLedger

    ledger = RedisLedger(redis_url, prefix=prefix, hold_lease=lease)
    tracker = CostTracker(budget_usd=budget, backend=ledger, catalog=Catalog([SPEC]))
    _STARTED.append(started)
    (tracker | Hanging()).invoke("hello")
