"""Invariants of counting: bounds, exact additivity at safe cuts, and fits == (count <= limit).

The lower bound must never exceed the exact count: it refuses inputs without reading them,
so a bound above the count would refuse an input that fits.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from llm_routing import ModelSpec
from llm_routing.tokens import (
    count_tokens,
    count_tokens_lower_bound,
    count_tokens_upto,
    count_tokens_within,
    fits,
    get_encoding,
)
from llm_routing.tokens._fast import count_upto, safe_cut

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENCODINGS = ["o200k_base", "cl100k_base"]
MODELS = [
    ModelSpec(provider="openai", name="p-4o", context_window=1000),
    ModelSpec(provider="openai", name="p-4", context_window=1000, tokenizer="cl100k_base"),
    ModelSpec(
        provider="anthropic", name="p-c", context_window=1000, tokenizer="estimate:anthropic"
    ),
    ModelSpec(provider="google", name="p-g", context_window=1000, tokenizer="estimate:gemini"),
]

# Fragments chosen to hit the regex alternatives: words, contractions, digits, punctuation,
# whitespace runs, newlines, CJK, Hangul, emoji, combining marks and separators.
FRAGMENTS = [
    *"aZ .,'’-/\n\t\r1中文한😀é\u0301。，",
    "'s",
    "  ",
    "\r\n",
    "123456",
    "<|endoftext|>",
]
texty = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.text(max_size=80),
)


def enc_count(name, text):
    return len(get_encoding(name).encode_ordinary(text))


@SETTINGS
@given(texty, st.sampled_from(ENCODINGS))
def test_count_is_between_byte_bounds(text, name):
    size = len(text.encode("utf-8", "surrogatepass"))
    assert -(-size // 128) <= enc_count(name, text) <= size


@SETTINGS
@given(texty, texty, texty, st.sampled_from(ENCODINGS))
def test_count_is_exactly_additive_at_safe_cuts(left, middle, right, name):
    text = left + middle + right
    cut = safe_cut(text, len(left))
    assert enc_count(name, text) == enc_count(name, text[:cut]) + enc_count(name, text[cut:])


@SETTINGS
@given(texty, st.sampled_from(MODELS))
def test_count_is_non_negative_and_estimates_never_below_o200k(text, model):
    count = count_tokens(text, model)
    assert count >= 0
    if model.tokenizer.startswith("estimate:"):
        assert count >= enc_count("o200k_base", text)


@SETTINGS
@given(st.lists(texty, max_size=4), st.sampled_from(MODELS), st.integers(-2, 120))
def test_fits_agrees_with_exact_count(parts, model, limit):
    messages = [("user", p) for p in parts]
    assert fits(messages, model, limit) == (count_tokens(messages, model) <= limit)
    text = "".join(parts)
    assert fits(text, model, limit) == (count_tokens(text, model) <= limit)


@settings(max_examples=25, deadline=None)
@given(st.lists(texty, min_size=1, max_size=8), st.sampled_from(ENCODINGS), st.data())
def test_chunked_count_is_exact_or_a_lower_bound_above_the_limit(parts, name, data):
    # Long enough to take the chunked path (chunks are >= 64k chars).
    text = "".join(parts) * (200_000 // max(1, len("".join(parts))) + 1)
    exact = enc_count(name, text)
    limit = data.draw(st.integers(0, exact + 10))
    encoding = get_encoding(name)
    got = count_upto(encoding, 128, text, limit)
    if exact <= limit:
        assert got == exact
    else:
        assert limit < got <= exact
    assert count_tokens_upto(text, name, limit) == got


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texty), max_size=5),
    st.sampled_from(MODELS),
    st.integers(0, 400),
)
def test_count_within_is_exact_when_it_fits_else_a_lower_bound_above_the_limit(
    messages, model, limit
):
    messages = messages or [("user", "x")]
    exact = count_tokens(messages, model)
    got = count_tokens_within(messages, model, limit)
    if exact <= limit:
        assert got == exact
    else:
        assert limit < got <= exact
    assert fits(messages, model, limit) == (got <= limit)


# --- the lower bound that refuses huge message lists without reading them -------------------

_ROLES = ["user", "human", "assistant", "ai", "system"]
_block = st.one_of(
    texty,
    st.builds(lambda t: {"type": "text", "text": t}, texty),
    st.just({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
)
_content = st.one_of(texty, st.lists(_block, max_size=3))


def _message_like(role, content, form, name):
    if form == "tuple":
        return (role, content)
    if form == "list":
        return [role, content]
    if form == "dict":
        return {"role": role, "content": content}
    if form == "str":
        return content if isinstance(content, str) else "x"
    cls = {"user": HumanMessage, "human": HumanMessage, "system": SystemMessage}.get(
        role, AIMessage
    )
    return cls(content=content, name=name)


message_likes = st.builds(
    _message_like,
    st.sampled_from(_ROLES),
    _content,
    st.sampled_from(["tuple", "list", "dict", "str", "object"]),
    st.one_of(st.none(), st.sampled_from(["alice", "bob-2"])),
)


@SETTINGS
@given(st.lists(message_likes, max_size=6), st.integers(1, 40), st.sampled_from(MODELS))
def test_lower_bound_never_exceeds_the_exact_count(messages, repeat, model):
    messages = messages * repeat
    exact = count_tokens(messages, model)
    assert count_tokens_lower_bound(messages, model) <= exact
    # The early answer (length alone) is a lower bound too, so no input that fits is refused.
    assert count_tokens_lower_bound(messages, model, stop_above=0) <= exact


@SETTINGS
@given(texty, st.sampled_from(MODELS))
def test_lower_bound_of_a_string_never_exceeds_its_count(text, model):
    assert count_tokens_lower_bound(text, model) <= count_tokens(text, model)


@SETTINGS
@given(
    st.lists(message_likes, min_size=1, max_size=4),
    st.integers(1, 60),
    st.sampled_from(MODELS),
    st.integers(0, 3000),
)
def test_count_within_of_long_lists_is_exact_when_it_fits_else_a_lower_bound(
    messages, repeat, model, limit
):
    # Long enough (up to 240 messages) to be converted in several chunks and stop early.
    messages = messages * repeat
    exact = count_tokens(messages, model)
    got = count_tokens_within(messages, model, limit)
    if exact <= limit:
        assert got == exact
    else:
        assert limit < got <= exact


# --- the plain fast path: the common shapes counted without building LangChain messages -----

_any_role = st.sampled_from([*_ROLES, "developer", "tool", "moderator", ""])
_short_text = st.one_of(texty, st.sampled_from(["", "user", "hi", "You are terse.", "a" * 13]))


def _plain_like(role, content, form, name):
    if form == "named_dict":
        return {"role": role, "content": content, "name": name}
    if form == "extra_key":
        return {"role": role, "content": content, "id": "m1"}
    if form == "triple":
        return (role, content, "x")
    if form == "none_content":
        return {"role": role, "content": None}
    return _message_like(role, content, form, name if isinstance(name, str) else None)


plain_likes = st.builds(
    _plain_like,
    _any_role,
    st.one_of(_short_text, _content),
    st.sampled_from(
        [
            "tuple",
            "list",
            "dict",
            "str",
            "object",
            "named_dict",
            "extra_key",
            "triple",
            "none_content",
        ]
    ),
    st.one_of(st.none(), st.sampled_from(["", "alice", "bob-2"]), st.just(7)),
)

# Mostly the shapes the fast path takes, so most examples exercise it.
common_likes = st.builds(
    _plain_like,
    st.sampled_from([*_ROLES, "developer"]),
    _short_text,
    st.sampled_from(["tuple", "list", "dict", "str", "object", "named_dict"]),
    st.one_of(st.none(), st.sampled_from(["", "alice", "bob-2"])),
)


def _outcome(fn):
    try:
        return fn()
    except Exception as exc:  # the same error, type and message, on both paths
        return (type(exc), str(exc))


@SETTINGS
@given(
    st.one_of(st.lists(plain_likes, max_size=6), st.lists(common_likes, max_size=6)),
    st.sampled_from(MODELS),
    st.integers(-1, 200),
    st.booleans(),
)
def test_plain_fast_path_counts_exactly_what_converting_counts(messages, model, limit, as_tuple):
    from unittest import mock

    from langchain_core.messages.utils import convert_to_messages

    from llm_routing.tokens import counting, tokenizer
    from llm_routing.tokens import messages as token_messages

    value = tuple(messages) if as_tuple else messages
    counter = tokenizer._counter(model.tokenizer)
    plain = token_messages._plain(value, counter)
    if plain is not None:
        # The items themselves (not only their sum) match, so every early exit matches too.
        slow: list = []
        for message in convert_to_messages(value):
            token_messages._message_items(message, counter, slow)
        assert plain == slow
    fast = (
        _outcome(lambda: count_tokens(value, model)),
        _outcome(lambda: count_tokens_within(value, model, limit)),
        _outcome(lambda: fits(value, model, limit)),
    )
    fitting = counting.count_tokens_fitting(value, model, limit)
    if fitting is not None:
        assert fitting == fast[0] == fast[1] <= limit
    with mock.patch.object(token_messages, "plain_items", lambda *args: None):
        slow_path = (
            _outcome(lambda: count_tokens(value, model)),
            _outcome(lambda: count_tokens_within(value, model, limit)),
            _outcome(lambda: fits(value, model, limit)),
        )
    assert fast == slow_path


def test_plain_fast_path_takes_the_common_shapes():
    from llm_routing.tokens import messages as token_messages
    from llm_routing.tokens import tokenizer

    counter = tokenizer._counter("o200k_base")
    shapes = [
        [("system", "Be brief."), ("user", "Hi")],
        [{"role": "user", "content": "Hi", "name": "ann"}, "plain string"],
        [HumanMessage("Hi"), ("developer", "Be brief."), ["ai", "Hello"]],
    ]
    for shape in shapes:
        assert token_messages._plain(shape, counter) is not None
    for odd in ([("tool", "x")], [{"role": "user", "content": [{"type": "text"}]}], [("u",)]):
        assert token_messages._plain(odd, counter) is None


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from([*_ROLES, "developer"]), _short_text), max_size=6),
    st.sampled_from(MODELS),
    st.integers(-1, 200),
    st.booleans(),
)
def test_role_text_pairs_path_counts_what_the_general_path_counts(pairs, model, limit, warm):
    """`count_fitting`'s walk of ``[(role, text), …]`` (no item list) answers as the general path.

    Each path answers the exact count or nothing (an unremembered text's bound may send an
    input that fits to the full count); with every text remembered, the answer is exact.
    """
    from unittest import mock

    from llm_routing.tokens import counting

    if warm:
        count_tokens(pairs, model)
    exact = count_tokens(pairs, model)
    answers = [
        counting.count_tokens_fitting(pairs, model, limit),
        counting.count_tokens_fitting(tuple(pairs), model, limit),  # the general path
    ]
    with mock.patch.object(counting, "MAX_PLAIN_MESSAGES", -1):  # the pairs walk off
        answers.append(counting.count_tokens_fitting(pairs, model, limit))
    for answer in answers:
        assert answer is None or answer == exact <= limit
        if exact > limit:
            assert answer is None
    if warm and exact <= limit:
        assert answers[0] == exact


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from([*_ROLES, "developer"]), st.one_of(_short_text, st.text())),
        max_size=6,
    ),
    st.sampled_from(MODELS),
    st.integers(0, 400),
)
def test_ascii_pairs_are_sendable_and_counted_as_count_fitting_counts(pairs, model, limit):
    """The guard skips its surrogate walk when `count_fitting_ascii` says ASCII pairs: only
    for input that has no surrogate, and with the count `count_fitting` gives."""
    from llm_routing._facts import _has_surrogate
    from llm_routing.tokens import counting

    counter = counting.counter_for(model)
    count, ascii = counting.count_fitting_ascii(pairs, counter, limit)
    assert count == counting.count_fitting(pairs, counter, limit)
    assert ascii == all(text.isascii() for _, text in pairs)
    if ascii:
        assert not _has_surrogate(pairs, 0)
