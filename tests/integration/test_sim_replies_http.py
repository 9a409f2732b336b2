"""Scripted replies over real HTTP, read by ``langchain_openai.ChatOpenAI``.

The recorded answer must reach a real client exactly: tool-call arguments as recorded, the
streamed tool-call deltas assembling to the same call, JSON content parsed by JSON mode, and
usage equal to what the simulator counted.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from llm_routing.sim import Reply, SimModel, SimulatedProvider
from llm_routing.sim import tokens as sim_tokens
from tests.support.sim import fresh, serving

QUERY = "What is the value of magic_function(3)? Use the tool."
JOKE = {
    "setup": "Why did the cat sit on the computer?",
    "punchline": "To keep an eye on the mouse.",
}
REPLIES = [
    Reply(when="magic_function(3)", tool_calls=[{"name": "magic_function", "args": {"input": 3}}]),
    Reply(
        when=r"customer named '([^']+)'",
        match="regex",
        tool_calls=[
            {
                "name": "unicode_customer",
                "args": {"customer_name": "你好啊集团", "description": "科技"},
            }
        ],
    ),
    Reply(
        when="weather in both",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Zürich"}},
            {"name": "get_weather", "args": {"city": "東京"}},
        ],
    ),
    Reply(when="joke about cats", content=JOKE),
]


# The tool classes are named as the tools the replies record (the standard suite's names).
class magic_function(BaseModel):
    """Apply a magic function to an input."""

    input: int = Field(gt=-1000, lt=1000)


class unicode_customer(BaseModel):
    """Create a customer with a Unicode name."""

    customer_name: str
    description: str


class get_weather(BaseModel):
    """The weather in a city."""

    city: str


class Joke(BaseModel):
    """Joke to tell user."""

    setup: str
    punchline: str


@pytest.fixture(scope="module")
def replies_server() -> Iterator[SimulatedProvider]:
    yield from serving([SimModel(name="gpt-4o-mini", replies=REPLIES)])


@pytest.fixture
def sim(replies_server: SimulatedProvider) -> Iterator[SimulatedProvider]:
    yield from fresh(replies_server)


def chat(sim: SimulatedProvider, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=sim.base_url,
        api_key="sim",
        max_retries=0,
        stream_usage=True,
        http_async_client=httpx.AsyncClient(),
        **kwargs,
    )


def assembled(chunks: list[BaseMessage]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    return total


def calls(message: AIMessage) -> list[tuple[str, dict]]:
    return [(c["name"], c["args"]) for c in message.tool_calls]


def test_the_recorded_tool_call_arrives_exactly_invoked_and_streamed(sim):
    llm = chat(sim).bind_tools([magic_function], tool_choice="any")
    message = llm.invoke(QUERY)
    assert calls(message) == [("magic_function", {"input": 3})]
    assert message.tool_calls[0]["id"]
    chunks = list(llm.stream(QUERY))
    assert len(chunks) > 2  # the arguments came in deltas, not whole
    streamed = assembled(chunks)
    assert calls(streamed) == calls(message)
    assert streamed.tool_calls[0]["id"]
    output = len(sim_tokens.output_encoding("o200k_base").encode('{"input": 3}'))
    assert message.usage_metadata["output_tokens"] == output
    assert streamed.usage_metadata["output_tokens"] == output
    stats = sim.stats()["models"]["gpt-4o-mini"]
    assert (stats["requests_served"], stats["scripted_replies"]) == (2, 2)
    assert stats["completion_tokens"] == 2 * output
    assert stats["prompt_tokens"] == (
        message.usage_metadata["input_tokens"] + streamed.usage_metadata["input_tokens"]
    )


async def test_the_recorded_tool_call_arrives_exactly_async(sim):
    llm = chat(sim).bind_tools([magic_function], tool_choice="any")
    message = await llm.ainvoke(QUERY)
    assert calls(message) == [("magic_function", {"input": 3})]
    streamed = assembled([chunk async for chunk in llm.astream(QUERY)])
    assert calls(streamed) == calls(message)


def test_unicode_arguments_arrive_unescaped_and_exact(sim):
    llm = chat(sim).bind_tools([unicode_customer], tool_choice="any")
    prompt = "Create a customer named '你好啊集团' (Hello Group)"
    expected = [("unicode_customer", {"customer_name": "你好啊集团", "description": "科技"})]
    assert calls(llm.invoke(prompt)) == expected
    assert calls(assembled(list(llm.stream(prompt)))) == expected


def test_parallel_recorded_calls_stream_and_assemble_by_index(sim):
    llm = chat(sim).bind_tools([get_weather])
    expected = [("get_weather", {"city": "Zürich"}), ("get_weather", {"city": "東京"})]
    message = llm.invoke("weather in both cities?")
    assert calls(message) == expected
    assert len({c["id"] for c in message.tool_calls}) == 2
    assert calls(assembled(list(llm.stream("weather in both cities?")))) == expected


def test_json_mode_parses_the_recorded_content(sim):
    prompt = "Tell me a joke about cats. Return JSON with 'setup' and 'punchline' keys."
    structured = chat(sim).with_structured_output(Joke, method="json_mode")
    assert structured.invoke(prompt) == Joke(**JOKE)
    assert list(structured.stream(prompt))[-1] == Joke(**JOKE)
    as_dict = chat(sim).with_structured_output(Joke.model_json_schema(), method="json_mode")
    assert as_dict.invoke(prompt) == JOKE


def test_a_prompt_no_reply_matches_gets_the_invented_answer(sim):
    message = chat(sim).invoke("Hello")
    assert message.usage_metadata["output_tokens"] == 12
    assert sim.stats()["models"]["gpt-4o-mini"]["scripted_replies"] == 0
