"""The decorators by hand: ``guard | scheduler | tracker | model``, with LangChain's own fallbacks.

Runs against the simulated provider (no API key): ``python examples/lcel_stack.py``.
One stack (one scheduler's windows, one tracker's ledger) decorates two models; the primary
allows 4 requests a minute, which OpenAI may enforce as one request every 15 s, so the
scheduler paces it: the first question goes to the primary and, with ``max_wait=5``, the next
ones fall back at once instead of waiting 15 s for their turn.
"""

from __future__ import annotations

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from llm_routing import FALLBACK_ERRORS, ContextGuard, CostTracker
from llm_routing.schedule import RateScheduler
from llm_routing.sim import SimModel, SimulatedProvider

MODELS = [SimModel("gpt-4o-mini", rpm=4), SimModel("gpt-4.1-nano")]


def main() -> None:
    """Run six questions through ``prompt | primary.with_fallbacks([backup]) | parser``."""
    with SimulatedProvider(MODELS) as sim:
        guard = ContextGuard()
        # The simulator allows 4 requests a minute on gpt-4o-mini; tell the scheduler so.
        # request_margin=0 uses all 4 (the default keeps 2 spare). Pacing follows the provider
        # (one every 15 s; pacing="burst" would send 4 at once), and max_wait=5 refuses any wait
        # longer than 5 s, so the chain falls back; the backup's own pace is a fraction of that.
        scheduler = RateScheduler(
            limits={"openai:gpt-4o-mini": {"rpm": 4}}, max_wait=5, request_margin=0
        )
        tracker = CostTracker(budget_usd=1.00)
        stack = guard | scheduler | tracker  # reusable: state is shared by every model

        def chat(name: str) -> ChatOpenAI:
            return ChatOpenAI(model=name, base_url=sim.base_url, api_key="sim", max_retries=0)

        primary = stack | chat("gpt-4o-mini")
        backup = stack | chat("gpt-4.1-nano")
        prompt = ChatPromptTemplate.from_messages([("user", "In one line: {question}")])
        chain = (
            prompt
            | primary.with_fallbacks([backup], exceptions_to_handle=FALLBACK_ERRORS)
            | StrOutputParser()
        )

        for i in range(6):
            answer = chain.invoke({"question": f"what is {i} squared?"})
            print(f"question {i}: {answer[:50]}...")

        print("\ncalls per model (tracker):")
        for model, group in tracker.summary()["by_model"].items():
            print(f"  {model:22} {group['calls']} calls, ${group['cost']:.6f}")
        refused = scheduler.stats()["refused_max_wait"]
        print(f"scheduler refusals (fallbacks instead of waits): {refused}")
        received = sim.stats()["models"]["gpt-4o-mini"]
        print(
            f"gpt-4o-mini got {received['requests_received']} requests and answered "
            f"{sum(received['rate_limited'].values())} with a 429"
        )


if __name__ == "__main__":
    main()
