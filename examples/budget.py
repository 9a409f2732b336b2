"""Budgets: a call that could overspend is refused before it is sent; spend is reported by tag.

Runs against the simulated provider (no API key): ``python examples/budget.py``.
The tracker holds each call's worst case (input + ``max_tokens`` at the model's prices) against
every budget that applies, then settles to the real usage the provider reports.
"""

from __future__ import annotations

import warnings

from langchain_openai import ChatOpenAI

from llm_routing import Budget, BudgetExceededError, BudgetWarning, CostTracker
from llm_routing.sim import SimModel, SimulatedProvider

# gpt-4o at catalogue prices ($2.50 in, $10 out per 1M tokens); answers of 150 tokens.
MODELS = [SimModel("gpt-4o", reply_tokens=150)]


def main() -> None:
    """Spend two teams' money until the search team's daily budget refuses a call."""
    tracker = CostTracker(
        budget_usd=0.05,  # all calls, until tracker.reset()
        budgets=[Budget(0.005, "day", tag="team:search")],  # per UTC day, tagged calls only
        warn_at=0.5,  # one BudgetWarning per budget and period once half of it is spent
    )
    with SimulatedProvider(MODELS) as sim:
        model = tracker | ChatOpenAI(
            model="gpt-4o", base_url=sim.base_url, api_key="sim", max_retries=0, max_tokens=200
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BudgetWarning)
            for team in ("team:chat", "team:chat", "team:search"):
                model.invoke("Suggest a name for a cat.", config={"tags": [team]})
            for call in range(1, 10):
                try:
                    model.invoke("Find papers on routing.", config={"tags": ["team:search"]})
                except BudgetExceededError as exc:
                    print(f"search call {call} refused before sending: {exc.scope} budget")
                    print(f"  {exc}")
                    break
        for warning in caught:
            print(f"warning: {warning.message}")

    summary = tracker.summary()
    print(f"\ntotal ${summary['total_cost']:.6f} over {summary['calls']} calls")
    for tag, group in summary["by_tag"].items():
        print(f"  {tag:12} {group['calls']} calls  ${group['cost']:.6f}")
    for budget in summary["budgets"]:
        print(
            f"  budget {budget['name']:26} spent ${budget['spent']:.6f} "
            f"of ${budget['limit']:.4f}, ${budget['remaining']:.6f} left"
        )
    print(f"refused calls: {summary['refused_calls']}")


if __name__ == "__main__":
    main()
