"""Streaming through a router: fallback happens only before the first chunk.

Runs against the simulated provider (no API key): ``python examples/streaming.py``.
Once a chunk has been yielded the router cannot switch models without duplicating output,
so a failure after it is raised (with a note saying so) rather than retried elsewhere.
"""

from __future__ import annotations

import asyncio

from llm_routing import build_router
from llm_routing.sim import FaultPlan, Latency, SimModel, SimulatedProvider

LATENCY = Latency(ttft=0.05, per_token=0.005)
MODELS = [
    # A prepaid balance of one request: the second gets 429 insufficient_quota.
    SimModel("gpt-4o-mini", quota_requests=1, reply_tokens=20, latency=LATENCY),
    SimModel("gpt-4.1-mini", reply_tokens=20, latency=LATENCY),
]


async def stream(router: object, label: str) -> None:
    """Print one streamed answer, and which model it came from."""
    print(f"{label}: ", end="", flush=True)
    served_by = "?"
    try:
        async for chunk in router.astream("Tell me about rate limits."):  # type: ignore[attr-defined]
            served_by = chunk.response_metadata.get("llm_routing.model", served_by)
            print(chunk.content, end="", flush=True)
    except Exception as exc:
        print(f"\n  -> failed after the first chunk: {type(exc).__name__}")
        for note in getattr(exc, "__notes__", []):
            print(f"     {note}")
        return
    print(f"\n  -> served by {served_by}")


async def main() -> None:
    """Three streams: the primary, a fallback before the first chunk, a drop after it."""
    with SimulatedProvider(MODELS) as sim:
        router = build_router(
            "openai:gpt-4o-mini",
            ["openai:gpt-4.1-mini"],
            init_kwargs={"base_url": sim.base_url, "api_key": "sim", "stream_usage": True},
        )
        await stream(router, "1. primary")
        await stream(router, "2. primary out of quota")
        # The fallback's next response is cut after 3 chunks.
        sim.set_faults("gpt-4.1-mini", FaultPlan(schedule={1: "drop"}, drop_after=3))
        await stream(router, "3. connection dropped")

        stats = router.stats()
        print(
            f"\nrequests: {stats['total_requests']}, quota fallbacks: "
            f"{stats['quota_fallbacks']}, cost ${stats['total_cost']:.6f} (streams are priced "
            "from their usage chunk)"
        )


if __name__ == "__main__":
    asyncio.run(main())
