"""``llm-routing demo --live``: three small requests through a router over real providers.

Uses the providers whose API keys are set, under a cost cap; nothing is simulated.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys

from llm_routing.cost import CostTracker
from llm_routing.errors import AllModelsFailedError
from llm_routing.router import build_router
from llm_routing.sim import tokens as sim_tokens

__all__ = ["live"]

_EXIT_NO_KEY = 2
_LIVE_MODELS = (
    ("OPENAI_API_KEY", "openai:gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-haiku-4-5"),
    ("GOOGLE_API_KEY", "google_genai:gemini-2.5-flash"),
)


def live(budget: float, as_json: bool) -> int:
    """Three small requests through a router over the providers whose keys are set."""
    chosen = [model for env, model in _LIVE_MODELS if os.environ.get(env)]
    if not chosen:
        names = ", ".join(env for env, _ in _LIVE_MODELS)
        print(
            f"llm-routing demo --live: no API key found; set at least one of {names}. "
            "(`llm-routing demo` without --live runs on the simulator and needs none.)",
            file=sys.stderr,
        )
        return _EXIT_NO_KEY
    tracker = CostTracker(budget_usd=budget)
    try:
        router = build_router(chosen[0], chosen[1:], tracker=tracker, init_kwargs={"timeout": 60})
    except ImportError as exc:
        print(f"llm-routing demo --live: {exc}", file=sys.stderr)
        return _EXIT_NO_KEY
    rng = random.Random(0)
    prompts = [
        "In one sentence: what is a rate limit?",
        "Name three prime numbers.",
        "Summarise in one sentence:\n" + sim_tokens.reply_text(rng, 1_500),
    ]

    async def one(prompt: str) -> str:
        try:
            message = await router.ainvoke(prompt, max_tokens=64)
        except AllModelsFailedError as exc:
            reasons = ", ".join(f"{a.model}: {a.kind.value}" for a in exc.attempts)
            return f"refused ({reasons})"
        return str(message.response_metadata.get("llm_routing.model"))

    async def run() -> list[str]:
        return list(await asyncio.gather(*(one(p) for p in prompts)))

    served = asyncio.run(run())
    stats = router.stats()
    summary = tracker.summary()
    if as_json:
        json.dump({"served": served, "stats": stats, "cost": summary}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{len(prompts)} requests through {' -> '.join(router.names)}, cost cap ${budget:g}")
    for prompt, outcome in zip(prompts, served, strict=True):
        print(f"  {prompt.splitlines()[0][:40]!r}: {outcome}")
    print(
        f"fallbacks: rate limit {stats['rate_limit_fallbacks']}, context "
        f"{stats['context_fallbacks']}, budget {stats['budget_fallbacks']}; "
        f"cost ${summary['total_cost']:.6f}"
    )
    return 0
