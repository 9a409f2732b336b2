"""Offline token counting: exact for OpenAI encodings, calibrated estimates for the rest.

Owns ``count_tokens``, ``fits`` and the packaged tiktoken encodings; context windows and what
to do when an input is too big belong to ``guard``. Inside: ``counting`` (totals, limits,
bounds), ``messages`` (inputs as texts and fixed costs), ``tokenizer`` (a model's tokenizer and
how it counts a text), ``estimate`` (calibrated non-OpenAI families).
"""

from llm_routing.tokens._encodings import ENCODING_NAMES, get_encoding
from llm_routing.tokens.counting import (
    count_tokens,
    count_tokens_lower_bound,
    count_tokens_upto,
    count_tokens_within,
    fits,
)
from llm_routing.tokens.estimate import Calibration, estimate_text_tokens, get_calibration
from llm_routing.tokens.tokenizer import tokenizer_for

__all__ = [
    "ENCODING_NAMES",
    "Calibration",
    "count_tokens",
    "count_tokens_lower_bound",
    "count_tokens_upto",
    "count_tokens_within",
    "estimate_text_tokens",
    "fits",
    "get_calibration",
    "get_encoding",
    "tokenizer_for",
]
