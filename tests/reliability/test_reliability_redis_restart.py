"""A Redis restart without persistence under a router sharing its budget and windows on Redis.

Not a cell of the fault matrix (``benchmarks.reliability.matrix``): its cells are provider
faults × scopes × entry points against one harness, while this fault is in the shared state
behind the router. So it runs here, against real parts: a private redis-server killed and
started again empty (no AOF, no RDB; the session's shared server is not disturbed), the
simulated provider over loopback HTTP, real ``ChatOpenAI`` clients, a `RedisLedger`-backed
`CostTracker` and a `RedisBackend` scheduler built the way ``build_router`` users build them.

Checked: the restart is detected; the warning or error names what was lost; the behaviour
follows ``on_state_lost`` (``"fail"`` refuses every call, and no request reaches the provider,
until the spend is re-seeded; ``"warn"`` carries on); and, failing closed, what was spent
before the restart plus what was spent after never passes the budget.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llm_routing.cost import CostTracker
from llm_routing.errors import AllModelsFailedError, BudgetExceededError
from llm_routing.router import Router, build_router
from llm_routing.schedule import RateScheduler
from llm_routing.sim import SimModel, SimulatedProvider
from redis_support import RedisServer, redis_binary

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore::llm_routing.cost.BudgetWarning"),
]

MODEL = "gpt-4o-mini"
BUDGET_USD = 0.0004  # a handful of calls of MAX_TOKENS at gpt-4o-mini prices


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(redis_binary(), tmp_path).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def sim() -> Iterator[SimulatedProvider]:
    with SimulatedProvider([SimModel(name=MODEL, reply_tokens=40)], seed=0) as provider:
        yield provider


def _router(url: str, sim: SimulatedProvider, on_state_lost: str) -> tuple[Router, Any, Any]:
    from langchain_openai import ChatOpenAI

    from llm_routing.cost.redis_ledger import RedisLedger
    from llm_routing.schedule.redis import RedisBackend

    prefix = f"restart-{uuid.uuid4().hex[:8]}"
    ledger = RedisLedger(url, prefix=prefix, socket_timeout=0.5, on_state_lost=on_state_lost)
    backend = RedisBackend(url, prefix=prefix, socket_timeout=0.5, retry_interval_s=0.01)
    model = ChatOpenAI(
        model=MODEL, base_url=sim.base_url, api_key="sim", max_retries=0, max_tokens=40
    )
    router = build_router(
        model,
        scheduler=RateScheduler(backend=backend, max_wait=5),
        tracker=CostTracker(budget_usd=BUDGET_USD, backend=ledger, max_wait=0),
    )
    return router, ledger, backend


def _received(sim: SimulatedProvider) -> int:
    return int(sim.stats()["models"][MODEL]["requests_received"])


def _causes(error: BaseException) -> list[BaseException]:
    """The error, its attempts' errors and their causes: where a typed refusal may sit."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or current in found:
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
        if isinstance(current, AllModelsFailedError):
            todo += [attempt.error for attempt in current.attempts]
    return found


def _spend_until_refused(router: Router) -> int:
    """Call until the budget refuses; the number of calls served."""
    served = 0
    while True:
        try:
            router.invoke("hello")
        except (AllModelsFailedError, BudgetExceededError) as exc:
            assert any(isinstance(e, BudgetExceededError) for e in _causes(exc)), exc
            return served
        served += 1


def _come_back(router: Router, server: RedisServer) -> BaseException:
    """Restart Redis empty, after one call that fails closed while it is down.

    Returns the first error once Redis answers again (the ledger's refusal, failing closed).
    """
    from llm_routing.schedule.redis import RedisUnavailableError

    server.stop()
    with pytest.raises((AllModelsFailedError, RedisUnavailableError)) as down:
        router.invoke("hello while Redis is down")
    assert any(isinstance(e, RedisUnavailableError) for e in _causes(down.value))
    server.start()
    while True:  # until the scheduler's retry interval has passed
        try:
            router.invoke("hello after the restart")
        except Exception as exc:
            if any(isinstance(e, RedisUnavailableError) for e in _causes(exc)):
                continue
            return exc
        raise AssertionError("a call went through after Redis lost the budget (fail closed)")


def test_fail_closed_refuses_until_re_seeded_and_never_passes_the_budget(server, sim):
    from llm_routing.cost.redis_ledger import RedisLedgerStateLostError
    from llm_routing.schedule.redis import RedisUnavailableWarning

    router, ledger, backend = _router(server.url, sim, "fail")
    for _ in range(3):
        router.invoke("hello")
    spent_before = ledger.bucket_usage(["total"])["total"][0]
    assert spent_before > 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refusal = _come_back(router, server)
    # Detected, and named: the ledger refuses (typed), the scheduler warns about its windows.
    lost = [e for e in _causes(refusal) if isinstance(e, RedisLedgerStateLostError)]
    assert lost, refusal
    message = str(lost[0])
    for named in ("restart without persistence", "'total'", "spent totals", "AOF or RDB"):
        assert named in message
    windows = [w for w in caught if issubclass(w.category, RedisUnavailableWarning)]
    assert any("lost the shared rate-limit windows" in str(w.message) for w in windows)

    # Failing closed: every later call is refused too, and none reaches the provider.
    sent = _received(sim)
    for _ in range(3):
        with pytest.raises(Exception) as again:
            router.invoke("hello")
        assert any(isinstance(e, RedisLedgerStateLostError) for e in _causes(again.value))
    assert _received(sim) == sent

    # The operator re-seeds what was spent (the ledger said it before the restart).
    ledger.acknowledge_loss(spent={"total": spent_before})
    served = _spend_until_refused(router)
    assert served >= 1
    spent_after = ledger.bucket_usage(["total"])["total"][0]  # re-seeded + spent since
    assert spent_after > spent_before
    assert spent_after <= Decimal(str(BUDGET_USD))
    assert ledger.summary()["in_flight_calls"] == 0
    ledger.close()
    backend.close()


def test_warn_carries_on_from_zero_and_says_what_was_lost(server, sim):
    from llm_routing.cost.redis_ledger import RedisLedgerStateLostWarning

    router, ledger, backend = _router(server.url, sim, "warn")
    served = _spend_until_refused(router)
    assert served >= 1
    server.restart()
    with pytest.warns(RedisLedgerStateLostWarning) as caught:
        answer = router.invoke("hello after the restart")
    assert answer.content
    text = " ".join(str(w.message) for w in caught)
    for named in ("restart without persistence", "'total'", "spent totals", "carrying on"):
        assert named in text
    # The spend starts again from $0: the risk the warning names, taken knowingly.
    assert ledger.summary()["calls"] == 1
    ledger.close()
    backend.close()
