"""The clean-input scan of ``check_sendable`` finds a lone surrogate exactly when the labelled
walk does: it is the fast path every call takes, the labelled walk only names the place."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage

from llm_routing._facts import _find_surrogate, _has_surrogate

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.one_of(
    st.text(max_size=6),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=4),
)
leaves = st.one_of(texts, st.integers(), st.none())
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(texts, inner, max_size=3),
        st.builds(lambda t: HumanMessage(t), texts),
        st.builds(lambda t, n: AIMessage(t, name=n), texts, st.one_of(st.none(), texts)),
    ),
    max_leaves=12,
)


@SETTINGS
@given(values)
def test_fast_scan_agrees_with_the_labelled_walk(value):
    assert _has_surrogate(value, 0) == (_find_surrogate(value, "input", 0) is not None)


def test_fast_scan_stops_at_the_same_depth():
    deep: object = "\ud800"
    for _ in range(40):
        deep = [deep]
    assert _has_surrogate(deep, 0) == (_find_surrogate(deep, "input", 0) is not None)
    assert _has_surrogate([["\udc00"]], 0)
