"""The demo's models and workload: what a naive app sends, each request to the model it names.

Three waves of concurrent jobs (chats, long documents, reports, an archive, a burst) sized so
that, sent as-is, some exceed a model's window and some its rate limits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.latency import Latency
from llm_routing.sim.model import SimModel
from llm_routing.sim.server import default_models

__all__ = ["DEMO_LATENCY", "Job", "demo_models", "workload"]

#: The demo models' latency: visible in a progress bar, short enough for a quick run.
DEMO_LATENCY = Latency(ttft=0.15, per_token=0.01, jitter=0.3)


def demo_models(latency: Latency = DEMO_LATENCY) -> list[SimModel]:
    """The demo's three models (``default_models``) with a visible latency."""
    return [replace(m, latency=latency) for m in default_models()]


@dataclass(frozen=True, slots=True)
class Job:
    """One request of the demo: what kind, to which model, the prompt, the output cap."""

    kind: str
    model: str
    prompt: str
    max_tokens: int


def workload(seed: int) -> list[list[Job]]:
    """Waves of concurrent jobs: what a naive app sends, each to the model it hard-codes."""
    rng = random.Random(seed)

    def text(tokens: int) -> str:
        return sim_tokens.reply_text(rng, tokens)

    chats = [Job("chat", "sim-mini", f"Question {i}: {text(20)}?", 256) for i in range(70)]
    long_docs = [
        Job("long document", "sim-mini", f"Summarise this report:\n{text(24_000)}", 512)
        for _ in range(3)
    ]
    reports = [
        Job("report", "sim-standard", f"Review this contract:\n{text(12_000)}", 2_000)
        for _ in range(5)
    ]
    burst = [Job("burst", "sim-standard", f"Classify: {text(30)}", 64) for _ in range(20)]
    archive = [
        # Six: sim-long allows 5 a minute, paced as 3 after the margin; more would leave some
        # archive with no model able to take it within max_wait.
        Job("archive", "sim-long", f"Index this archive:\n{text(3_000)}", 1_000)
        for _ in range(6)
    ]
    return [chats[:35] + long_docs, reports + archive, chats[35:] + burst]
