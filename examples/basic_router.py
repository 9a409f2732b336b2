"""Route by size: short prompts go to the primary, long documents to the smallest model that fits.

Runs against the simulated provider (no API key): ``python examples/basic_router.py``.
The simulated models are twins of catalogue models, so the guard's windows and the simulator's
agree; a request the guard let through wrongly would come back as a real 400.
"""

from __future__ import annotations

from llm_routing import AllModelsFailedError, build_router, default_catalog
from llm_routing.sim import SimModel, SimulatedProvider

NAMES = ("openai:gpt-4o-mini", "openai:gpt-5-mini", "openai:gpt-4.1-mini")
# Windows: 128k, 400k and about 1M tokens. Tier 2 limits: tier 1's 200k TPM for gpt-4.1-mini
# would refuse a 450k-token request outright.
MODELS = [SimModel.from_spec(default_catalog().get(name), tier="tier2") for name in NAMES]


def document(tokens: int) -> str:
    """About ``tokens`` tokens of text ("The quarterly ... growth. " is 7 tokens)."""
    return "The quarterly report shows steady growth. " * (tokens // 7)


def main() -> None:
    """Send a question and three documents of growing size through one router."""
    with SimulatedProvider(MODELS) as sim:
        router = build_router(
            "openai:gpt-4o-mini",
            # Any order: the builder sorts large-context models by window, smallest first.
            large_context=["openai:gpt-4.1-mini", "openai:gpt-5-mini"],
            tier="tier2",
            init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
        )
        print(f"router: {router}")
        jobs = {
            "a question": "What is a context window?",
            "a 150k-token report": "Summarise:\n" + document(150_000),
            "a 450k-token archive": "Summarise:\n" + document(450_000),
            "a 1.2M-token dump": "Summarise:\n" + document(1_200_000),
        }
        for label, prompt in jobs.items():
            try:
                answer = router.invoke(prompt)
            except AllModelsFailedError as exc:
                print(f"{label:22} -> no model fits:")
                for attempt in exc.attempts:
                    print(f"{'':26}{attempt.model}: {attempt.kind.value}")
                continue
            skipped = [a["model"] for a in answer.response_metadata["llm_routing.attempts"]]
            served_by = answer.response_metadata["llm_routing.model"]
            print(f"{label:22} -> {served_by} (skipped: {', '.join(skipped) or 'none'})")

        stats = router.stats()
        print(
            f"\n{stats['total_requests']} requests: {stats['primary_requests']} on the primary, "
            f"{stats['fallback_requests']} on a fallback, {stats['failed_requests']} failed; "
            f"models skipped as too small: {stats['context_fallbacks']}; "
            f"cost ${stats['total_cost']:.4f}"
        )
        # The guard refused oversize input before the network: each model saw one request.
        received = {m.name: sim.stats()["models"][m.name]["requests_received"] for m in MODELS}
        print(f"requests the simulator received: {received}")


if __name__ == "__main__":
    main()
