from __future__ import annotations

import random

import pytest

from llm_routing.sim.faults import FaultPlan


def test_schedule_fails_exactly_the_listed_requests():
    plan = FaultPlan.at({3: 503, 5: "reset"})
    rng = random.Random(0)
    assert [plan.draw(n, rng) for n in range(1, 7)] == [None, None, "503", None, "reset", None]


def test_rates_are_reproducible_for_a_seed():
    plan = FaultPlan(rates={"500": 0.25, "timeout": 0.25})
    first = [plan.draw(n, random.Random(7)) for n in range(1, 50)]
    again = [plan.draw(n, random.Random(7)) for n in range(1, 50)]
    assert first == again


def test_rates_roughly_match_their_probabilities():
    plan = FaultPlan(rates={"503": 0.3})
    rng = random.Random(1)
    hits = sum(plan.draw(n, rng) == "503" for n in range(1, 5_001))
    assert 1_300 < hits < 1_700


def test_always_fails_every_request():
    plan = FaultPlan.always(529)
    assert {plan.draw(n, random.Random(0)) for n in range(1, 20)} == {"529"}


def test_empty_plan_never_fails():
    assert FaultPlan().is_empty
    assert FaultPlan().draw(1, random.Random(0)) is None


def test_parse_reads_rates_and_schedule():
    plan = FaultPlan.parse("503:0.1, timeout:0.05,500@3")
    assert dict(plan.rates) == {"503": 0.1, "timeout": 0.05}
    assert dict(plan.schedule) == {3: "500"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rates": {"418": 0.1}}, "unknown fault kind"),
        ({"rates": {"503": 1.5}}, "probability"),
        ({"rates": {"503": 0.6, "500": 0.6}}, "sum to at most 1"),
        ({"schedule": {0: "503"}}, "1-based"),
        ({"drop_after": -1}, "drop_after"),
        ({"hang": -2}, "hang"),
    ],
)
def test_bad_plans_are_rejected_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FaultPlan(**kwargs)


@pytest.mark.parametrize("text", ["503", "503:x", "500@third"])
def test_parse_rejects_malformed_items(text):
    with pytest.raises(ValueError, match="fault"):
        FaultPlan.parse(text)


def test_a_plan_and_a_model_carrying_it_pickle_for_a_simulator_in_a_child_process():
    import pickle

    from llm_routing.sim import SimModel

    plan = FaultPlan(rates={"503": 0.1}, schedule={3: "reset"}, drop_after=1, retry_after=2)
    model = SimModel(name="m", faults=plan)
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert pickle.loads(pickle.dumps(model)) == model


def test_the_timeline_keeps_only_the_newest_events():
    from llm_routing.sim import SimModel
    from llm_routing.sim.state import TIMELINE_EVENTS, SimState

    state = SimState([SimModel(name="m")])
    assert state._runtimes["m"].timeline.maxlen == TIMELINE_EVENTS
