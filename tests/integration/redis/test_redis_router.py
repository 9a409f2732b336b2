"""build_router with a Redis URL: the scheduler's windows and the tracker's budget on Redis."""

from __future__ import annotations

from llm_routing.cost.redis_ledger import RedisLedger
from llm_routing.router import build_router
from llm_routing.schedule.redis import RedisBackend
from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.sim import chat


def test_build_router_with_a_redis_url_shares_windows_and_budget_on_redis(redis_server):
    with SimulatedProvider([SimModel(name="gpt-4o-mini")]) as sim:
        model = chat(sim, "gpt-4o-mini")
        router = build_router(model, backend=redis_server.url, budget_usd=1.0)
        scheduler = router.settings["scheduler"]
        tracker = router.settings["tracker"]
        assert isinstance(scheduler.backend, RedisBackend)
        assert isinstance(tracker.ledger, RedisLedger)
        answer = router.invoke("hello")
        assert answer.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
        assert scheduler.snapshot("openai:gpt-4o-mini")["requests_in_window"] >= 1
        assert router.stats()["total_cost"] > 0
