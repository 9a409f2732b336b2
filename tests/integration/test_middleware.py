"""`RoutingMiddleware` in LangChain's real ``create_agent``, over HTTP against the simulator.

Real ChatOpenAI clients talk to the simulated provider, whose request counters prove which
models were (and were not) called; faults injected there (a 429 with a long Retry-After, an
oversize input the simulator would reject) show the router's rule applied to agent calls.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from llm_routing import CostTracker, RoutingMiddleware
from llm_routing.errors import AllModelsFailedError, ErrorKind
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider
from tests.support.sim import chat, fresh, made_up_words, received, served, serving

# Windows as in the catalogue: the guard reads them from there, the simulator enforces them.
MODELS = [
    SimModel(name="gpt-4o-mini", context_window=128_000),
    SimModel(name="gpt-4o", context_window=128_000),
    SimModel(name="gpt-4.1-mini", context_window=1_047_576),
]


# 50,000 made-up words: about 190,000 tokens, over a 128k window, under 1M.
FIFTY_THOUSAND_WORDS = made_up_words(50_000)


@pytest.fixture(scope="module")
def sim_module() -> Iterator[SimulatedProvider]:
    yield from serving(MODELS)


@pytest.fixture
def sim(sim_module: SimulatedProvider) -> Iterator[SimulatedProvider]:
    yield from fresh(sim_module)


def routing(sim: SimulatedProvider, **kwargs) -> RoutingMiddleware:
    kwargs.setdefault("fallbacks", ["openai:gpt-4o"])
    kwargs.setdefault("large_context", ["openai:gpt-4.1-mini"])
    return RoutingMiddleware(init_kwargs={"base_url": sim.base_url, "api_key": "sim"}, **kwargs)


def ai_messages(result: dict) -> list[AIMessage]:
    return [m for m in result["messages"] if isinstance(m, AIMessage)]


def served_by(message: AIMessage) -> str:
    return message.response_metadata["llm_routing.model"]


searches: list[str] = []


@tool
def search(query: str) -> str:
    """Search the web for the query."""
    searches.append(query)
    return f"results for {query}"


class Answer(BaseModel):
    """A short answer with a confidence."""

    text: str
    confidence: float


@pytest.fixture(autouse=True)
def _no_searches() -> None:
    searches.clear()


# --- the done-when ---------------------------------------------------------------------


def test_long_retry_after_falls_back_instead_of_waiting(sim):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("429", retry_after=600))
    middleware = routing(sim, max_wait=5)
    agent = create_agent(chat(sim, "gpt-4o-mini"), middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("Say hello")]})
    [answer] = ai_messages(result)
    assert served_by(answer) == "openai:gpt-4o"
    [attempt] = answer.response_metadata["llm_routing.attempts"]
    assert (attempt["model"], attempt["kind"]) == ("openai:gpt-4o-mini", "rate_limit")
    # One request to the primary: a 600 s Retry-After is not waited out within max_wait=5.
    assert received(sim, "gpt-4o-mini") == 1
    assert served(sim, "gpt-4o") == 1
    stats = middleware.stats()
    assert stats["fallback_requests"] == stats["rate_limit_fallbacks"] == 1
    assert stats["by_model"]["openai:gpt-4o"]["requests"] == 1


def test_oversize_input_goes_to_the_large_context_model_before_any_request(sim):
    middleware = routing(sim)
    agent = create_agent(chat(sim, "gpt-4o-mini"), middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage(FIFTY_THOUSAND_WORDS)]})
    [answer] = ai_messages(result)
    assert served_by(answer) == "openai:gpt-4.1-mini"
    attempts = answer.response_metadata["llm_routing.attempts"]
    assert [(a["model"], a["kind"]) for a in attempts] == [
        ("openai:gpt-4o-mini", "context"),
        ("openai:gpt-4o", "context"),
    ]
    # The guard refused before the network: the small models never saw a request.
    assert received(sim, "gpt-4o-mini") == received(sim, "gpt-4o") == 0
    assert served(sim, "gpt-4.1-mini") == 1
    assert middleware.stats()["context_fallbacks"] == 2


def test_every_model_call_of_the_agent_is_priced(sim):
    tracker = CostTracker()
    middleware = routing(sim, tracker=tracker)
    agent = create_agent(chat(sim, "gpt-4o-mini"), tools=[search], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("Find the LangChain changelog")]})
    # Model call 1 asks for the tool, model call 2 answers after its result.
    assert len(ai_messages(result)) == 2
    assert searches
    records = tracker.records()
    assert len(records) == served(sim, "gpt-4o-mini") == 2
    assert all(r.key == "openai:gpt-4o-mini" and r.cost_usd for r in records)
    summary = tracker.summary(exact=True)
    assert summary["calls"] == 2
    assert summary["input_tokens"] == sim.stats()["models"]["gpt-4o-mini"]["prompt_tokens"]
    assert middleware.stats()["total_cost"] == pytest.approx(float(summary["total_cost"]))
    assert middleware.stats()["by_model"]["openai:gpt-4o-mini"]["cost"] > 0


# --- tools, structured output, sync and async, next to LangChain's middleware ----------------


def test_tools_still_work_after_a_fallback(sim):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("429", retry_after=600))
    middleware = routing(sim, max_wait=5)
    agent = create_agent(chat(sim, "gpt-4o-mini"), tools=[search], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("Find the LangChain changelog")]})
    asked, answered = ai_messages(result)
    assert [call["name"] for call in asked.tool_calls] == ["search"]
    assert len(searches) == 1
    assert any(isinstance(m, ToolMessage) and m.name == "search" for m in result["messages"])
    assert answered.content and not answered.tool_calls
    # Both model calls of the agent loop fell back, and the fallback got the agent's tools.
    assert served_by(asked) == served_by(answered) == "openai:gpt-4o"
    assert served(sim, "gpt-4o") == 2
    assert middleware.stats()["rate_limit_fallbacks"] == 2


def test_structured_output_from_the_fallback(sim):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("429", retry_after=600))
    middleware = routing(sim, max_wait=5)
    agent = create_agent(chat(sim, "gpt-4o-mini"), response_format=Answer, middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("How sure are you?")]})
    assert isinstance(result["structured_response"], Answer)
    [answer] = ai_messages(result)
    assert served_by(answer) == "openai:gpt-4o"
    # The agent's own choice for gpt-4o is the provider's JSON schema, not a tool call: the
    # decorated model did not make it fall back to the tool strategy.
    assert not answer.tool_calls
    assert not any(isinstance(m, ToolMessage) for m in result["messages"])


def test_structured_output_and_tools_together(sim):
    middleware = routing(sim)
    agent = create_agent(
        chat(sim, "gpt-4o-mini"),
        tools=[search],
        response_format=Answer,
        middleware=[middleware],
    )
    result = agent.invoke({"messages": [HumanMessage("Search, then answer")]})
    assert len(searches) == 1
    assert isinstance(result["structured_response"], Answer)
    assert all(served_by(m) == "openai:gpt-4o-mini" for m in ai_messages(result))


@pytest.mark.asyncio(loop_scope="session")
async def test_async_agent_falls_back_and_calls_tools(sim):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("429", retry_after=600))
    middleware = routing(sim, max_wait=5)
    agent = create_agent(chat(sim, "gpt-4o-mini"), tools=[search], middleware=[middleware])
    result = await agent.ainvoke({"messages": [HumanMessage("Find the LangChain changelog")]})
    messages = ai_messages(result)
    assert [served_by(m) for m in messages] == ["openai:gpt-4o", "openai:gpt-4o"]
    assert len(searches) == 1
    # The 429 cooled the primary down: the loop's second call skipped it without a request.
    assert received(sim, "gpt-4o-mini") == 1
    assert middleware.stats()["fallback_requests"] == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_async_oversize_input_goes_to_the_large_context_model(sim):
    middleware = routing(sim)
    agent = create_agent(chat(sim, "gpt-4o-mini"), middleware=[middleware])
    result = await agent.ainvoke({"messages": [HumanMessage(FIFTY_THOUSAND_WORDS)]})
    [answer] = ai_messages(result)
    assert served_by(answer) == "openai:gpt-4.1-mini"
    assert received(sim, "gpt-4o-mini") == received(sim, "gpt-4o") == 0


def test_next_to_summarization_middleware(sim):
    summarizer = chat(sim, "gpt-4.1-mini")
    summarization = SummarizationMiddleware(
        summarizer, trigger=("messages", 3), keep=("messages", 1)
    )
    tracker = CostTracker()
    middleware = routing(sim, tracker=tracker)
    agent = create_agent(
        chat(sim, "gpt-4o-mini"), tools=[search], middleware=[summarization, middleware]
    )
    history = [
        HumanMessage("First question"),
        AIMessage("First answer"),
        HumanMessage("Second question"),
        AIMessage("Second answer"),
        HumanMessage("Find the LangChain changelog"),
    ]
    result = agent.invoke({"messages": history})
    # The summariser ran (on its own model, outside the routing) and the agent still routed.
    assert served(sim, "gpt-4.1-mini") >= 1
    assert any("summary" in str(m.content).lower() for m in result["messages"][:2])
    routed = ai_messages(result)[-1]
    assert served_by(routed) == "openai:gpt-4o-mini"
    assert len(searches) == 1
    # Only the agent's own model calls went through the tracker.
    assert {r.key for r in tracker.records()} == {"openai:gpt-4o-mini"}
    assert len(tracker.records()) == served(sim, "gpt-4o-mini")


# --- the router's rule, and nothing more ---------------------------------------------------


def test_every_model_failing_names_each(sim):
    for name in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"):
        sim.set_faults(name, FaultPlan.always("quota"))
    middleware = routing(sim)
    agent = create_agent(chat(sim, "gpt-4o-mini"), middleware=[middleware])
    with pytest.raises(AllModelsFailedError) as info:
        agent.invoke({"messages": [HumanMessage("Say hello")]})
    assert [a.model for a in info.value.attempts] == [
        "openai:gpt-4o-mini",
        "openai:gpt-4o",
        "openai:gpt-4.1-mini",
    ]
    # Quota errors fall back at once: one request each, no retries.
    assert all(a.kind is ErrorKind.QUOTA for a in info.value.attempts)
    assert [received(sim, m) for m in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")] == [1, 1, 1]
    assert middleware.stats()["failed_requests"] == 1


def test_a_bad_request_propagates_without_fallback(sim):
    middleware = routing(sim)
    # n=2: the simulator answers 400 invalid_value. The next model would reject the request
    # the same way, so the router's rule is not to try it.
    model = ChatOpenAI(
        model="gpt-4o-mini", base_url=sim.base_url, api_key="sim", max_retries=0, n=2
    )
    agent = create_agent(model, middleware=[middleware])
    with pytest.raises(openai.BadRequestError):
        agent.invoke({"messages": [HumanMessage("hi")]})
    assert received(sim, "gpt-4o-mini") == 1
    assert received(sim, "gpt-4o") == received(sim, "gpt-4.1-mini") == 0


def test_one_middleware_serves_agents_with_different_models(sim):
    middleware = routing(sim, fallbacks=[], large_context=[])
    small = create_agent(chat(sim, "gpt-4o-mini"), middleware=[middleware])
    large = create_agent(chat(sim, "gpt-4.1-mini"), middleware=[middleware])
    small.invoke({"messages": [HumanMessage("hi")]})
    large.invoke({"messages": [HumanMessage("hi")]})
    stats = middleware.stats()
    assert stats["total_requests"] == stats["primary_requests"] == 2
    assert stats["by_model"]["openai:gpt-4o-mini"]["requests"] == 1
    assert stats["by_model"]["openai:gpt-4.1-mini"]["requests"] == 1


def test_arguments_are_checked_as_build_router_checks_them():
    with pytest.raises(ValueError, match=r"RoutingMiddleware: tier, max_wait and backend"):
        RoutingMiddleware(scheduler=False, max_wait=3)
    with pytest.raises(TypeError, match=r"RoutingMiddleware\(fallbacks\[0\]\)"):
        RoutingMiddleware(fallbacks=[42])


def test_core_import_does_not_need_langchain_agents():
    code = (
        "import sys\n"
        "sys.modules['langchain.agents'] = None\n"
        "import llm_routing\n"
        "assert 'langchain.agents.middleware' not in sys.modules\n"
        "try:\n"
        "    llm_routing.RoutingMiddleware\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'llm-routing[agents]'" in result.stdout
