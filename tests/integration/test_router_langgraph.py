"""The router inside LangGraph and LangChain agents, with real ChatOpenAI clients over HTTP.

A graph node that calls ``router.invoke`` must still stream token chunks to
``stream_mode="messages"``; ``create_agent`` must accept the router as its model, run tools and
stop; callback handlers must see the inner model's run with the guard's metadata.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from llm_routing.router import Router, build_router
from llm_routing.sim import SimulatedProvider
from tests.support.sim import chat, served


def router_for(sim: SimulatedProvider, **kw: Any) -> Router:
    """gpt-4o-mini first, then a second simulated model (window from its profile)."""
    return build_router(
        chat(sim, "gpt-4o-mini", **kw),
        [chat(sim, "faulty", profile={"max_input_tokens": 128_000}, **kw)],
    )


def one_node_graph(router: Router) -> Any:
    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [router.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("llm", call_model)
    graph.add_edge(START, "llm")
    graph.add_edge("llm", END)
    return graph.compile()


# --- LangGraph node, stream_mode="messages" -------------------------------------------------


def test_graph_node_streams_token_chunks_from_a_streaming_model(sim):
    graph = one_node_graph(router_for(sim, streaming=True))
    items = list(graph.stream({"messages": [("user", "Tell me a fact.")]}, stream_mode="messages"))
    chunks = [chunk for chunk, _meta in items if isinstance(chunk, AIMessageChunk)]
    assert len(chunks) > 1
    assert all(meta["langgraph_node"] == "llm" for _chunk, meta in items)
    assert "".join(str(chunk.content) for chunk in chunks).strip()


def test_graph_node_streams_token_chunks_when_the_model_does_not_set_streaming(sim):
    # LangGraph's messages handler makes an unset-streaming model stream inside invoke;
    # the router and the guard must not hide that handler from the model.
    graph = one_node_graph(router_for(sim))
    items = list(graph.stream({"messages": [("user", "Tell me a fact.")]}, stream_mode="messages"))
    assert sum(isinstance(chunk, AIMessageChunk) for chunk, _meta in items) > 1


def test_graph_node_state_gets_the_routed_message(sim):
    graph = one_node_graph(router_for(sim, streaming=True))
    state = graph.invoke({"messages": [("user", "Tell me a fact.")]})
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage)
    assert answer.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
    assert served(sim, "gpt-4o-mini") == 1


# --- create_agent ---------------------------------------------------------------------------


def weather_tool(calls: list[str]) -> Any:
    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}."

    return weather


def assert_agent_ran_tool_and_ended(messages: list[Any], calls: list[str]) -> None:
    assert len(calls) == 1
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_results] == [f"Sunny in {calls[0]}."]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert not final.tool_calls
    assert str(final.content).strip()


def test_create_agent_with_router_runs_the_tool_and_ends(sim):
    calls: list[str] = []
    agent = create_agent(model=router_for(sim), tools=[weather_tool(calls)])
    state = agent.invoke({"messages": [("user", "What is the weather in Paris?")]})
    assert_agent_ran_tool_and_ended(state["messages"], calls)
    assert served(sim, "gpt-4o-mini") == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_create_agent_with_router_runs_the_tool_and_ends_async(sim):
    calls: list[str] = []
    agent = create_agent(model=router_for(sim), tools=[weather_tool(calls)])
    state = await agent.ainvoke({"messages": [("user", "What is the weather in Paris?")]})
    assert_agent_ran_tool_and_ended(state["messages"], calls)
    assert served(sim, "gpt-4o-mini") == 2


def test_create_agent_falls_back_between_steps_when_the_primary_runs_out_of_quota(sim):
    # "prepaid" serves one request, then answers 429 insufficient_quota: the agent's first
    # step (the tool call) comes from it, the second from the fallback.
    calls: list[str] = []
    router = build_router(
        chat(sim, "prepaid", profile={"max_input_tokens": 128_000}),
        [chat(sim, "gpt-4o-mini")],
    )
    agent = create_agent(model=router, tools=[weather_tool(calls)])
    messages = agent.invoke({"messages": [("user", "What is the weather in Paris?")]})["messages"]
    assert_agent_ran_tool_and_ended(messages, calls)
    ai = [m for m in messages if isinstance(m, AIMessage)]
    assert [m.response_metadata["llm_routing.model"] for m in ai] == [
        "openai:prepaid",
        "openai:gpt-4o-mini",
    ]
    assert [a["kind"] for a in ai[-1].response_metadata["llm_routing.attempts"]] == ["quota"]


# --- callbacks ------------------------------------------------------------------------------


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[Any, dict[str, Any]]] = []
        self.ends: list[Any] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, metadata=None, **kwargs):
        self.starts.append((run_id, dict(metadata or {})))

    def on_llm_end(self, response, *, run_id, **kwargs):
        self.ends.append(run_id)


def test_callback_handler_sees_the_inner_model_run_with_the_guards_token_estimate(sim):
    recorder = Recorder()
    router_for(sim).invoke("Hello there.", config={"callbacks": [recorder]})
    assert len(recorder.starts) == 1
    run_id, metadata = recorder.starts[0]
    assert recorder.ends == [run_id]
    assert metadata["ls_model_name"] == "gpt-4o-mini"
    assert isinstance(metadata["llm_routing.input_tokens"], int)
    assert metadata["llm_routing.input_tokens"] > 0
    assert metadata["llm_routing.context_window"] == 128_000
