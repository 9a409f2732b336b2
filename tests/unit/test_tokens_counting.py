import base64
import struct
import zlib
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from llm_routing import ModelSpec
from llm_routing.errors import UnknownModelError
from llm_routing.tokens import count_tokens, count_tokens_upto, fits, get_encoding, tokenizer_for

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
O200K = ModelSpec(provider="openai", name="test-4o", context_window=128_000)
CL100K = ModelSpec(provider="openai", name="test-4", context_window=8192, tokenizer="cl100k_base")
CLAUDE = ModelSpec(
    provider="anthropic", name="test-claude", context_window=200_000, tokenizer="estimate:anthropic"
)
GEMINI = ModelSpec(
    provider="google", name="test-gemini", context_window=1_000_000, tokenizer="estimate:gemini"
)


def n(text, name="o200k_base"):
    return len(get_encoding(name).encode_ordinary(text))


def png(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def jpeg(width, height):
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00" * 3
    return b"\xff\xd8" + app0 + sof + b"\x00" * 32


def gif(width, height):
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 32


def webp(width, height):
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + b"\x00" * 16


def data_url(data, mime="image/png"):
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_msg(url, detail=None):
    part = {"url": url} if detail is None else {"url": url, "detail": detail}
    return [HumanMessage(content=[{"type": "image_url", "image_url": part}])]


# An image message without the image: 3 per message + "user" + 3 priming.
IMAGE_FRAME = 3 + 1 + 3


# -- plain text --------------------------------------------------------------------------


def test_empty_string_is_zero_tokens():
    assert count_tokens("", O200K) == 0
    assert count_tokens("", CLAUDE) == 0


def test_string_counts_exactly_its_o200k_tokens():
    assert count_tokens("hello world", O200K) == 2


def test_string_counts_exactly_its_cl100k_tokens():
    text = (CORPUS / "python_code.txt").read_text("utf-8")
    assert count_tokens(text, CL100K) == n(text, "cl100k_base")


@pytest.mark.parametrize("name", ["openai:gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini"])
def test_every_name_form_resolves_to_o200k(name):
    assert tokenizer_for(name) == "o200k_base"
    assert count_tokens("hello world", name) == 2


def test_tokenizer_name_can_stand_in_for_a_model():
    assert count_tokens("hello world", "cl100k_base") == 2


def test_unknown_model_name_is_a_value_error_from_the_catalogue():
    with pytest.raises(UnknownModelError):
        count_tokens("hi", "openai:no-such-model-xyz")


def test_chat_model_instance_resolves_through_the_catalogue():
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    gpt = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test")
    claude = ChatAnthropic(model="claude-haiku-4-5", api_key="sk-test")
    assert tokenizer_for(gpt) == "o200k_base"
    assert tokenizer_for(claude) == "estimate:anthropic"
    assert count_tokens("hello world", gpt) == 2


def test_gigantic_string_is_counted():
    text = "All work and no play makes Jack a dull boy.\n" * 100_000  # 4.4 MB
    assert count_tokens(text, O200K) == n(text)


# -- messages ------------------------------------------------------------------------------


def test_empty_message_list_costs_only_reply_priming():
    assert count_tokens([], O200K) == 3


def test_one_message_follows_the_cookbook_rule():
    assert count_tokens([("user", "hello world")], O200K) == 3 + n("user") + 2 + 3


def test_message_name_costs_its_tokens_plus_one():
    plain = count_tokens([HumanMessage("hi")], O200K)
    named = count_tokens([HumanMessage("hi", name="alice")], O200K)
    assert named == plain + n("alice") + 1


def test_tuples_dicts_and_messages_count_the_same():
    as_tuples = [("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4")]
    as_dicts = [{"role": r, "content": c} for r, c in as_tuples]
    as_messages = [SystemMessage("Be brief."), HumanMessage("What is 2+2?"), AIMessage("4")]
    counts = {count_tokens(x, O200K) for x in (as_tuples, as_dicts, as_messages)}
    assert len(counts) == 1


def test_prompt_value_and_messages_dict_count_as_their_messages():
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{q}")])
    value = prompt.invoke({"q": "Why is the sky blue?"})
    messages = value.to_messages()
    assert count_tokens(value, O200K) == count_tokens(messages, O200K)
    assert count_tokens({"messages": messages}, O200K) == count_tokens(messages, O200K)


def test_matches_langchain_openai_for_text_messages(monkeypatch):
    import tiktoken
    from langchain_openai import ChatOpenAI

    # Offline: tiktoken's public lookup answers with our packaged encoding instead of
    # downloading it (langchain-openai asks tiktoken by model name).
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda _m: get_encoding("o200k_base"))
    messages = [
        SystemMessage("You are a careful assistant."),
        HumanMessage("Summarise the text below.\n\n" + (CORPUS / "english_prose.txt").read_text()),
        AIMessage("Sure."),
        HumanMessage("Now in Chinese.", name="bob"),
    ]
    ours = count_tokens(messages, "gpt-4o-mini")
    theirs = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test").get_num_tokens_from_messages(
        messages
    )
    assert ours == theirs


def test_ai_tool_calls_are_counted():
    call = {"name": "get_weather", "args": {"city": "Lisbon"}, "id": "call_1"}
    without = count_tokens([AIMessage("")], O200K)
    with_call = count_tokens([AIMessage("", tool_calls=[call])], O200K)
    expected = 3 + n("get_weather") + n('{"city":"Lisbon"}') + n("call_1")
    assert with_call - without == expected


def test_tool_use_blocks_duplicating_tool_calls_are_not_counted_twice():
    call = {"name": "get_weather", "args": {"city": "Lisbon"}, "id": "toolu_1"}
    block = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Lisbon"},
    }
    only_calls = AIMessage("", tool_calls=[call])
    both = AIMessage([block], tool_calls=[call])
    assert count_tokens([both], O200K) == count_tokens([only_calls], O200K)


def test_tool_message_counts_its_call_id_and_content():
    msg = ToolMessage("18 degrees", tool_call_id="call_1")
    assert count_tokens([msg], O200K) == 3 + n("tool") + n("call_1") + n("18 degrees") + 3


# -- tools ---------------------------------------------------------------------------------


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str = Field(description="City name")


def get_time(zone: str) -> str:
    """Current time in a time zone.

    Args:
        zone: IANA zone name.
    """
    return zone


@tool
def search(query: str) -> str:
    """Search the web."""
    return query


@pytest.mark.parametrize(
    "spec_tool",
    [GetWeather, get_time, search, convert_to_openai_tool(GetWeather)],
    ids=["pydantic", "function", "langchain-tool", "openai-dict"],
)
def test_tool_schema_costs_its_compact_json(spec_tool):
    import json

    schema = json.dumps(convert_to_openai_tool(spec_tool), separators=(",", ":"))
    base = count_tokens([("user", "hi")], O200K)
    assert count_tokens([("user", "hi")], O200K, tools=[spec_tool]) == base + n(schema)


def test_tools_with_a_plain_string_add_to_its_count():
    assert count_tokens("hi", O200K, tools=[GetWeather]) > count_tokens("hi", O200K)


# -- images --------------------------------------------------------------------------------


def test_low_detail_image_is_85_tokens():
    msgs = image_msg("https://example.com/cat.png", "low")
    assert count_tokens(msgs, O200K) == IMAGE_FRAME + 85


@pytest.mark.parametrize(
    ("size", "tokens"),
    [((1024, 1024), 765), ((2048, 4096), 1105), ((512, 512), 255), ((100, 100), 255)],
)
def test_high_detail_image_follows_openai_tile_rule(size, tokens):
    msgs = image_msg(data_url(png(*size)), "high")
    assert count_tokens(msgs, O200K) == IMAGE_FRAME + tokens


@pytest.mark.parametrize(
    ("make", "mime"),
    [(png, "image/png"), (jpeg, "image/jpeg"), (gif, "image/gif"), (webp, "image/webp")],
)
def test_image_size_is_read_from_data_url_header(make, mime):
    msgs = image_msg(data_url(make(1024, 1024), mime))
    assert count_tokens(msgs, O200K) == IMAGE_FRAME + 765


def test_remote_image_of_unknown_size_costs_the_largest_high_detail_price():
    msgs = image_msg("https://example.com/cat.png")
    assert count_tokens(msgs, O200K) == IMAGE_FRAME + 1445


def test_given_width_and_height_are_used_for_remote_images():
    block = {
        "type": "image_url",
        "image_url": {"url": "https://x/a.png", "width": 1024, "height": 1024},
    }
    assert count_tokens([HumanMessage(content=[block])], O200K) == IMAGE_FRAME + 765


def test_langchain_v1_image_block_is_counted():
    block = {
        "type": "image",
        "base64": base64.b64encode(png(1024, 1024)).decode(),
        "mime_type": "image/png",
    }
    assert count_tokens([HumanMessage(content=[block])], O200K) == IMAGE_FRAME + 765


def test_anthropic_family_uses_anthropic_image_rule():
    msgs = image_msg(data_url(png(1000, 1000)))
    assert count_tokens(msgs, CLAUDE) == 3 + 2 + 3 + 1334  # "user" estimates to 2 tokens


def test_gemini_family_uses_gemini_tile_rule():
    msgs = image_msg(data_url(png(1000, 1000)))
    assert count_tokens(msgs, GEMINI) == 3 + 2 + 3 + 4 * 258


# -- estimates -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_estimate_is_never_below_the_exact_o200k_count(path):
    text = path.read_text("utf-8")
    assert count_tokens(text, CLAUDE) >= n(text)
    assert count_tokens(text, GEMINI) >= n(text)


def test_unknown_estimate_family_names_the_known_ones():
    with pytest.raises(ValueError, match=r"anthropic.*generic"):
        count_tokens("hi", "estimate:llama")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 42, 3.5, object(), b"bytes", {"role": "user"}])
def test_unsupported_input_is_a_type_error_naming_what_is_accepted(bad):
    with pytest.raises(TypeError, match="PromptValue"):
        count_tokens(bad, O200K)


def test_unreadable_message_is_a_type_error():
    with pytest.raises(TypeError, match="could not read a message"):
        count_tokens([{"content": "no role"}], O200K)


@pytest.mark.parametrize("bad", [None, 7, ["gpt-4o"]])
def test_unsupported_model_is_a_type_error(bad):
    with pytest.raises(TypeError, match="ModelSpec"):
        count_tokens("hi", bad)


def test_tools_must_be_a_list():
    with pytest.raises(TypeError, match="tools must be a list"):
        count_tokens("hi", O200K, tools=GetWeather)


# -- fast path -----------------------------------------------------------------------------


def test_fits_agrees_with_count_at_the_boundary():
    text = (CORPUS / "english_prose.txt").read_text("utf-8")
    for model in (O200K, CL100K, CLAUDE, GEMINI):
        exact = count_tokens([("user", text)], model)
        assert fits([("user", text)], model, exact)
        assert not fits([("user", text)], model, exact - 1)


def test_ten_megabytes_do_not_fit_gpt_4o_mini():
    text = ((CORPUS / "english_prose.txt").read_text("utf-8") + "\n") * 3400
    assert len(text.encode()) > 10_000_000
    assert not fits(text, O200K, 128_000)


def test_small_input_fits_without_counting(monkeypatch):
    enc = get_encoding("o200k_base")
    monkeypatch.setattr(type(enc), "encode_ordinary", lambda *a, **k: pytest.fail("encoded"))
    assert fits("short text", O200K, 1000)


def test_negative_limit_never_fits():
    assert not fits("", O200K, -1)


def test_count_upto_is_exact_under_the_limit_and_a_lower_bound_over_it():
    text = (CORPUS / "english_prose.txt").read_text("utf-8") * 50
    exact = n(text)
    assert count_tokens_upto(text, "o200k_base", exact) == exact
    over = count_tokens_upto(text, "o200k_base", exact // 10)
    assert exact // 10 < over <= exact


def test_limit_must_be_an_int():
    with pytest.raises(TypeError, match="limit_tokens"):
        fits("hi", O200K, 10.5)
