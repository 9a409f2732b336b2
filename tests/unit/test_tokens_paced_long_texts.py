"""Long texts counted for an event loop: the same numbers, without holding the GIL for long.

``encode_count`` skips the long-whitespace-run scan when sampling proves there is no run
(the scan alone held the GIL ~10 ms per MB), and a paced count tokenises a long text a
safe-cut chunk at a time. Both must give exactly the unpaced, fully scanned count.
"""

import itertools

import pytest

from llm_routing.tokens import _fast, get_encoding
from llm_routing.tokens._fast import _LONG_RUN, _may_hold_long_run, encode_count, paced

RUN = _fast._RUN_PART


CASES = itertools.product(
    [RUN, RUN + 1, 2 * RUN + 7], [0, 32_767, 32_768, 50_000], [" ", "\u3000", " \t"]
)


@pytest.mark.parametrize(("length", "offset", "char"), list(CASES))
def test_sampling_never_misses_a_long_run(length, offset, char):
    run = (char * length)[:length]
    text = "x" * offset + run + "y" * 1000
    found = _LONG_RUN.search(text) is not None
    assert found == (length > RUN)
    if found:
        assert _may_hold_long_run(text)


def test_sampling_rules_out_ordinary_text():
    assert not _may_hold_long_run("word " * 200_000)
    assert not _may_hold_long_run(("line\n" * 10) * 30_000)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_a_paced_count_of_a_long_text_is_exact(name):
    encoding = get_encoding(name)
    text = "Hello, world. 中文 한국어 😀 e\u0301\nline two, word word.\t" * 4_000
    with paced():
        assert encode_count(encoding, text) == len(encoding.encode_ordinary(text))
        with_run = text + " " * (RUN + 5) + text
        paced_count = encode_count(encoding, with_run)
    assert paced_count == encode_count(encoding, with_run)  # as counted unpaced
