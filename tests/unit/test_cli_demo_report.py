"""The demo's closing text says, in one line, when routing cost more than the plain run and why."""

from __future__ import annotations

from decimal import Decimal

from llm_routing.cli.demo.report import Comparison, DemoReport, ModelReport, RoutedReport


def comparison(routed_cost: float, plain_cost: str = "0.14") -> Comparison:
    # The plain run: 104 requests, 3 too long for gpt-4o-mini and 9 rate limited, $0.14.
    plain = DemoReport(
        models={
            "gpt-4o-mini": ModelReport(
                requests=104,
                successes=92,
                rate_limited_requests=9,
                context_overflows=3,
                cost_usd=Decimal(plain_cost),
            )
        }
    )
    routed = RoutedReport(
        requests=104,
        answered=104,
        fallbacks={"context": 3, "rate_limit": 9},
        cost_usd=routed_cost,
    )
    return Comparison(plain, routed, factor=10.0, max_wait=90.0)


def test_a_dearer_routed_run_says_so_in_one_line_with_why():
    line = comparison(0.36).dearer()
    assert line == (
        "Routing cost $0.3600 against $0.1400 for the plain run because it answered 12 "
        "request(s) the plain run could not (a failed request is not billed); 3 input(s) too "
        "long for their model went to a dearer long-context model and 9 rate-limited call(s) "
        "went to a fallback model."
    )
    assert line in comparison(0.36).summary()
    assert "\n" not in line


def test_without_more_answers_the_line_blames_the_dearer_fallbacks():
    same = comparison(0.36)
    same.routed.answered = 92
    same.routed.fallbacks = {"context": 3}
    assert same.dearer() == (
        "Routing cost $0.3600 against $0.1400 for the plain run because its fallbacks went to "
        "models that cost more per token; 3 input(s) too long for their model went to a dearer "
        "long-context model."
    )


def test_no_line_when_routing_cost_the_same_or_less_or_the_plain_cost_is_unknown():
    assert comparison(0.14).dearer() is None
    assert comparison(0.10).dearer() is None
    unknown = comparison(0.36)
    unknown.plain.models["gpt-4o-mini"].cost_usd = None
    assert unknown.dearer() is None
    assert "Routing cost" not in comparison(0.10).summary()
