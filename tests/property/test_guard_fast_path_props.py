"""The guard's one-pass path for short plain inputs decides exactly as its full path does.

Same count, same metadata, same call state, same refusal (type and message) for generated
inputs, windows, reserves and tokenizers; only the work done differs.
"""

from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables.config import ensure_config

from llm_routing import ModelSpec
from llm_routing import guard as guard_module
from llm_routing._decorator import Call
from llm_routing.guard import ContextGuard

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKENIZERS = ["o200k_base", "cl100k_base", "estimate:anthropic", "estimate:gemini"]

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "hi", "You are terse.", "word " * 30, "\ud800 lone"]),
)
roles = st.sampled_from(["user", "human", "assistant", "ai", "system", "developer", "tool"])
elements = st.one_of(
    st.tuples(roles, texts),
    st.builds(lambda r, t: {"role": r, "content": t}, roles, texts),
    texts,
    st.builds(HumanMessage, texts),
    st.builds(SystemMessage, texts),
    st.builds(AIMessage, texts),
)
inputs = st.one_of(texts, st.lists(elements, max_size=5), st.lists(elements, max_size=3).map(tuple))


class Model:
    """Stands for a chat model: the guard reads only its spec (from the catalogue below)."""


def _run(guard: ContextGuard, model: Model, value: object, kwargs: dict) -> tuple:
    call = Call(value, ensure_config(None), kwargs, model, {}, False)
    try:
        guard.before(call)
    except Exception as exc:
        return ("raised", type(exc), str(exc), call.state)
    return ("admitted", call.state, dict(call.metadata))


@SETTINGS
@given(
    inputs,
    st.sampled_from(TOKENIZERS),
    st.integers(8, 400),
    st.one_of(st.none(), st.integers(0, 300)),
)
def test_one_pass_path_decides_as_the_full_path(value, tokenizer, window, max_tokens):
    spec = ModelSpec(provider="openai", name="g", context_window=window, tokenizer=tokenizer)
    guard = ContextGuard(safety=1.0)
    model = Model()
    guard._models.put(model, guard_module._Fit(guard, model, spec))
    kwargs = {} if max_tokens is None else {"max_tokens": max_tokens}
    fast = _run(guard, model, value, kwargs)
    with mock.patch.object(guard_module, "_fitting", lambda *args: (None, False)):
        full = _run(guard, model, value, kwargs)
    assert fast == full
