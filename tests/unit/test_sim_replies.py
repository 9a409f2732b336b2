"""Scripted replies (``SimModel(replies=[Reply(...)])``): the simulator's recorded-response double.

Matched against the last user message, answered through the same admission, counting and
framing as an invented answer; tested here in process (``compose``, ``SimChatModel``, the SSE
frames). Over HTTP with ``ChatOpenAI``: tests/integration/test_sim_replies_http.py.
"""

from __future__ import annotations

import json
import random

import pytest
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from llm_routing.schedule import VirtualClock
from llm_routing.sim import Reply, SimChatModel, SimModel
from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.answer import compose
from llm_routing.sim.replies import ScriptedCall, last_user_text, pick_reply
from llm_routing.sim.state import SimState
from llm_routing.sim.wire import ChatRequest, stream_frames

MAGIC = Reply(
    when="magic_function(3)", tool_calls=[{"name": "magic_function", "args": {"input": 3}}]
)


class MagicFunction(BaseModel):
    """Apply a magic function to an input."""

    input: int = Field(gt=-1000, lt=1000)


class Other(BaseModel):
    """Another tool."""

    x: int


def make(*replies: Reply, **fields) -> SimChatModel:
    clock = VirtualClock()
    state = SimState([SimModel(name="m", replies=replies, **fields)], clock=clock.now)
    return SimChatModel(state=state, model_name="m", clock=clock)


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def request(text: str, **fields) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], **fields)


# -- the value ------------------------------------------------------------------------------


def test_a_reply_keeps_arguments_and_json_content_as_the_wire_text():
    assert MAGIC.calls == (ScriptedCall("magic_function", '{"input": 3}'),)
    unicode = Reply(when="x", tool_calls=[{"name": "f", "args": {"name": "你好"}}])
    assert unicode.calls[0].arguments == '{"name": "你好"}'  # unescaped, as OpenAI sends it
    assert Reply(when="x", content={"a": [1, "é"]}).content == '{"a": [1, "é"]}'
    assert Reply(when="x", tool_calls=[{"name": "f", "arguments": "{}"}]).calls[0].arguments == "{}"
    hash(MAGIC)  # a SimModel holding it stays a hashable frozen value


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"when": ""}, ValueError),
        ({"when": "x"}, ValueError),  # neither content nor tool calls
        ({"when": "x", "content": "a", "tool_calls": [{"name": "f"}]}, ValueError),
        ({"when": "x", "content": "a", "match": "glob"}, ValueError),
        ({"when": "(", "content": "a", "match": "regex"}, ValueError),
        ({"when": "x", "tool_calls": [{"args": {}}]}, TypeError),
        ({"when": "x", "tool_calls": [{"name": "f", "args": [1]}]}, TypeError),
    ],
)
def test_a_malformed_reply_is_refused_when_built(fields, error):
    with pytest.raises(error):
        Reply(**fields)


def test_replies_from_their_json_form_and_in_a_model():
    reply = Reply.from_dict({"when": "^hi$", "match": "regex", "content": "hello"})
    assert reply.matches("hi") and not reply.matches("hi there")
    with pytest.raises(ValueError, match="unknown Reply field"):
        Reply.from_dict({"when": "x", "content": "a", "answer": "b"})
    model = SimModel(name="m", replies=[reply])
    assert model.replies == (reply,)
    with pytest.raises(TypeError, match="Reply values"):
        SimModel(name="m", replies=[{"when": "x", "content": "a"}])


# -- which reply answers --------------------------------------------------------------------


def test_the_last_user_message_is_matched_its_text_parts_joined():
    messages = [
        {"role": "user", "content": "magic_function(3)"},
        {"role": "assistant", "content": "?"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "say"}, {"type": "text", "text": "hi"}],
        },
        {"role": "assistant", "content": "ok"},
    ]
    assert last_user_text(messages) == "say\nhi"
    hi = Reply(when="say\nhi", content="hello")
    assert pick_reply([MAGIC, hi], messages, [tool("magic_function")], None) is hi
    assert last_user_text([{"role": "system", "content": "s"}]) == ""


def test_substring_and_regex_matching():
    pattern = Reply(when=r"magic_function\((\d+)\)", match="regex", content="n")
    assert pattern.matches("What is magic_function(42)?")
    assert not pattern.matches("magic_function(x)")
    assert Reply(when="Cats", content="c").matches("Tell me about Cats")
    assert not Reply(when="Cats", content="c").matches("tell me about cats")  # as written


def test_a_reply_answers_only_what_the_request_allows():
    messages = [{"role": "user", "content": "magic_function(3)"}]
    tools = [tool("magic_function"), tool("other")]
    assert pick_reply([MAGIC], messages, tools, None) is MAGIC
    assert pick_reply([MAGIC], messages, tools, "required") is MAGIC
    assert pick_reply([MAGIC], messages, tools, "none") is None
    assert pick_reply([MAGIC], messages, [tool("other")], None) is None  # tool not offered
    assert pick_reply([MAGIC], messages, [], None) is None
    forced_other = {"type": "function", "function": {"name": "other"}}
    forced_magic = {"type": "function", "function": {"name": "magic_function"}}
    assert pick_reply([MAGIC], messages, tools, forced_other) is None
    assert pick_reply([MAGIC], messages, tools, forced_magic) is MAGIC
    text = Reply(when="magic_function(3)", content="5")
    assert pick_reply([text], messages, tools, "required") is None  # a tool call is forced
    assert pick_reply([text], messages, tools, None) is text


def test_after_a_tool_result_the_first_allowed_reply_ends_the_loop():
    done = Reply(when="magic_function(3)", content="It is 5.")
    messages = [
        {"role": "user", "content": "What is magic_function(3)?"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "5", "tool_call_id": "call_1"},
    ]
    tools = [tool("magic_function")]
    assert pick_reply([MAGIC, done], messages, tools, None) is done
    assert pick_reply([MAGIC, done], messages, tools, "required") is MAGIC


# -- the answer -----------------------------------------------------------------------------


def test_a_scripted_tool_call_is_counted_from_its_real_tokens():
    model = SimModel(name="m", replies=[MAGIC])
    completion = compose(
        model, request("magic_function(3)", tools=[tool("magic_function")]), 21, random.Random(0), 7
    )
    encoding = sim_tokens.output_encoding(model.tokenizer)
    assert completion.content is None and completion.scripted
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("call_sim7", "magic_function", '{"input": 3}')
    ]
    assert completion.completion_tokens == len(encoding.encode('{"input": 3}'))
    assert completion.prompt_tokens == 21
    assert completion.finish_reason == "tool_calls"
    assert "".join(completion.pieces) == '{"input": 3}'


def test_scripted_text_is_cut_at_max_tokens_and_stop_like_any_text():
    model = SimModel(name="m", replies=[Reply(when="count", content="one two three four five six")])
    encoding = sim_tokens.output_encoding(model.tokenizer)
    cut = compose(model, request("count", max_tokens=2), 5, random.Random(0), 1)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 2)
    assert cut.content == encoding.decode(encoding.encode("one two three four five six")[:2])
    stopped = compose(model, request("count", stop=(" three",)), 5, random.Random(0), 2)
    assert (stopped.content, stopped.finish_reason) == ("one two", "stop")
    whole = compose(model, request("count"), 5, random.Random(0), 3)
    assert whole.content == "one two three four five six"
    assert whole.completion_tokens == len(encoding.encode(whole.content))


def test_no_matching_reply_leaves_the_invented_answer_unchanged():
    plain, scripted = SimModel(name="m"), SimModel(name="m", replies=[MAGIC])
    for req in (request("hello"), request("hello", tools=[tool("magic_function")])):
        a = compose(plain, req, 5, random.Random(3), 1)
        b = compose(scripted, req, 5, random.Random(3), 1)
        assert a == b and not b.scripted


def test_parallel_tool_calls_stream_per_index_and_assemble_to_the_calls():
    both = Reply(
        when="both",
        tool_calls=[
            {"name": "a", "args": {"city": "Zürich", "days": 3}},
            {"name": "b", "args": {"q": "こんにちは株式会社"}},
        ],
    )
    model = SimModel(name="m", replies=[both])
    completion = compose(
        model, request("both", tools=[tool("a"), tool("b")]), 5, random.Random(0), 4
    )
    assert [c.id for c in completion.tool_calls] == ["call_sim4_0", "call_sim4_1"]
    frames = stream_frames(completion, include_usage=True)
    calls: dict[int, dict] = {}
    for raw in frames[:-1]:
        chunk = json.loads(raw.removeprefix(b"data: "))
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls", []):
                call = calls.setdefault(delta["index"], {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.get("id") or call["id"]
                call["name"] += delta.get("function", {}).get("name", "")
                call["arguments"] += delta["function"].get("arguments", "")
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [
        {"city": "Zürich", "days": 3},
        {"q": "こんにちは株式会社"},
    ]
    assert [(calls[i]["id"], calls[i]["name"]) for i in (0, 1)] == [
        ("call_sim4_0", "a"),
        ("call_sim4_1", "b"),
    ]
    assert len([f for f in frames if b'"arguments": ""' in f]) == 2  # one opening per call
    usage = json.loads(frames[-2].removeprefix(b"data: "))["usage"]
    assert usage["completion_tokens"] == completion.completion_tokens


# -- in process, through the state ----------------------------------------------------------


def test_a_reply_naming_a_tool_not_offered_leaves_the_invented_call():
    llm = make(MAGIC)  # records magic_function; the request offers MagicFunction
    message = llm.bind_tools([MagicFunction], tool_choice="any").invoke(
        "What is the value of magic_function(3)? Use the tool."
    )
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["name"] == "MagicFunction"
    stats = llm.state.stats()["models"]["m"]
    assert (stats["scripted_replies"], stats["requests_served"]) == (0, 1)


def test_in_process_a_recorded_tool_call_and_json_answer():
    joke = Reply(when="joke", content={"setup": "Why?", "punchline": "Because."})
    llm = make(
        Reply(when="magic", tool_calls=[{"name": "MagicFunction", "args": {"input": 3}}]), joke
    )
    message = llm.bind_tools([MagicFunction], tool_choice="any").invoke("magic please")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("MagicFunction", {"input": 3})]
    assert message.usage_metadata["output_tokens"] == len(
        sim_tokens.output_encoding("o200k_base").encode('{"input": 3}')
    )
    answer = llm.invoke([HumanMessage("tell a joke")], response_format={"type": "json_object"})
    assert json.loads(answer.content) == {"setup": "Why?", "punchline": "Because."}
    stats = llm.state.stats()
    assert stats["models"]["m"]["scripted_replies"] == 2
    assert stats["scripted_replies"] == 2
    assert stats["completion_tokens"] == (
        message.usage_metadata["output_tokens"] + answer.usage_metadata["output_tokens"]
    )


def test_a_scripted_answer_is_rate_limited_like_any_other():
    llm = make(Reply(when="hi", content="hello"), rpm=1, enforcement="sliding")
    assert llm.invoke("hi").content == "hello"
    with pytest.raises(ModelRateLimitError):
        llm.invoke("hi")
    stats = llm.state.stats()["models"]["m"]
    assert (stats["requests_served"], stats["scripted_replies"]) == (1, 1)


def test_an_agent_loop_over_a_recorded_call_ends_with_the_recorded_text():
    llm = make(
        Reply(when="magic", tool_calls=[{"name": "MagicFunction", "args": {"input": 3}}]),
        Reply(when="magic", content="magic_function(3) is 5."),
    ).bind_tools([MagicFunction])
    first = llm.invoke([HumanMessage("magic")])
    call = first.tool_calls[0]
    second = llm.invoke([HumanMessage("magic"), first, ToolMessage("5", tool_call_id=call["id"])])
    assert second.content == "magic_function(3) is 5." and not second.tool_calls


# -- outside Python: sim serve --replies FILE -----------------------------------------------


def test_serve_reads_replies_for_every_model_and_per_model(tmp_path):
    from llm_routing.sim.serve import _models, _serve_parser

    everyone = tmp_path / "all.json"
    everyone.write_text(json.dumps([{"when": "hi", "content": "hello"}]), "utf-8")
    per_model = tmp_path / "per.json"
    per_model.write_text(
        json.dumps(
            {"sim-mini": [{"when": "f", "tool_calls": [{"name": "f", "args": {"a": "é"}}]}]}
        ),
        "utf-8",
    )

    def served(*argv: str) -> dict[str, SimModel]:
        return {m.name: m for m in _models(_serve_parser().parse_args(list(argv)))}

    assert {m.replies for m in served("--replies", str(everyone)).values()} == {
        (Reply(when="hi", content="hello"),)
    }
    models = served("--replies", str(per_model))
    assert models["sim-mini"].replies[0].calls == (ScriptedCall("f", '{"a": "é"}'),)
    assert models["sim-standard"].replies == ()
    assert {m.replies for m in served().values()} == {()}


@pytest.mark.parametrize(
    "document",
    [
        {"no-such-model": [{"when": "x", "content": "y"}]},
        [{"when": "x"}],
        [{"when": "x", "content": "y", "extra": 1}],
        {"sim-mini": {"when": "x", "content": "y"}},
        "just text",
    ],
)
def test_serve_refuses_a_bad_replies_file_with_exit_code_2(tmp_path, capsys, document):
    from llm_routing.sim.serve import serve_main

    path = tmp_path / "replies.json"
    path.write_text(json.dumps(document), "utf-8")
    assert serve_main(["--port", "0", "--replies", str(path)]) == 2
    assert "llm-routing sim serve:" in capsys.readouterr().err
