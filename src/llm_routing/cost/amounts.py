"""`TokenUsage` and `Cost`: the values pricing reads and produces.

Apart from the arithmetic (``cost.pricing``) because every part of ``cost`` holds them (the
records, the ledgers, the Redis codec, the Langfuse export) while few need to price. Both are
frozen and slotted; the tracker builds one of each per call, so `_token_usage` and `_cost`
set their slots directly. Amounts are ``Decimal`` in a private 60-digit context (`_CONTEXT`).
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, fields
from decimal import Decimal

__all__ = ["Cost", "TokenUsage"]

_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
_ZERO = Decimal(0)

# Langfuse's names for the parts of a generation's usage and cost (its OpenAI-style schema).
_LF_INPUT = "input"
_LF_CACHE_READ = "cache_read_input_tokens"
_LF_CACHE_WRITE = "cache_creation_input_tokens"
_LF_OUTPUT = "output"
_LF_REASONING = "reasoning"
_LF_TOTAL = "total"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One call's tokens split into disjoint kinds, each billed at its own price.

    ``input`` is the prompt minus cache reads and writes, ``output`` the answer minus
    reasoning; every token is in exactly one field. ``cache_write_1h`` holds Anthropic's
    1-hour cache writes (priced differently from the 5-minute ones in ``cache_write``).
    ``service_tier`` is the tier that served the call when the provider said so (``"flex"``,
    ``"priority"``, ``"batch"``…; ``None`` or ``"default"`` for standard): the same tokens
    cost a different amount in each, so the tier travels with them to `price`.
    """

    input: int = 0
    cached_input: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0
    service_tier: str | None = None

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, as ``usage_metadata["input_tokens"]`` counts it."""
        return self.input + self.cached_input + self.cache_write + self.cache_write_1h

    @property
    def completion_tokens(self) -> int:
        """The whole answer, as ``usage_metadata["output_tokens"]`` counts it."""
        return self.output + self.reasoning

    @property
    def total_tokens(self) -> int:
        """Prompt plus answer."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Cost:
    """USD for one call (or a sum of calls), by kind of token.

    A part is ``None`` when it has tokens but its price is unknown, and then ``total`` is
    ``None`` too: an unknown cost is never reported as $0. A part without tokens is
    ``Decimal(0)`` whether or not its price is known.
    """

    input: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    output: Decimal | None
    reasoning: Decimal | None
    total: Decimal | None

    @classmethod
    def zero(cls) -> Cost:
        """The cost of nothing, to start a sum."""
        return cls(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO)

    @classmethod
    def unknown(cls) -> Cost:
        """A cost nobody can compute (no spec, no price)."""
        return cls(None, None, None, None, None, None)

    @property
    def known(self) -> bool:
        """Whether the total is known."""
        return self.total is not None

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(_add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    def as_langfuse(self) -> dict[str, float]:
        """Langfuse ``cost_details``: the non-zero parts and ``total``, in USD.

        Empty when the total is unknown: a partial breakdown would make Langfuse show the
        known parts as the whole cost. Keys match `usage_details`.
        """
        if self.total is None:
            return {}
        details: dict[str, float] = {}
        for key, value in (
            (_LF_INPUT, self.input),
            (_LF_CACHE_READ, self.cached_input),
            (_LF_CACHE_WRITE, self.cache_write),
            (_LF_OUTPUT, self.output),
            (_LF_REASONING, self.reasoning),
        ):
            if value:
                details[key] = float(value)
        details[_LF_TOTAL] = float(self.total)
        return details


# Building a frozen dataclass runs ``object.__setattr__`` by name once per field (about 150 ns
# each); the tracker builds a TokenUsage and a Cost for every call. These build the same
# objects (same class, equal, every slot set) through the slots' own descriptors, less than
# half the time. tests/unit/test_cost_hot_path.py holds them equal to the constructors.
_NEW = object.__new__
_TOKEN_SLOTS = tuple(TokenUsage.__dict__[f.name].__set__ for f in fields(TokenUsage))
_COST_SLOTS = tuple(Cost.__dict__[f.name].__set__ for f in fields(Cost))


def _token_usage(
    input: int,
    cached_input: int,
    cache_write: int,
    cache_write_1h: int,
    output: int,
    reasoning: int,
    service_tier: str | None,
) -> TokenUsage:
    """``TokenUsage(...)`` for counts already checked, every field given (see above)."""
    usage = _NEW(TokenUsage)
    s_in, s_cached, s_write, s_write_1h, s_out, s_reasoning, s_tier = _TOKEN_SLOTS
    s_in(usage, input)
    s_cached(usage, cached_input)
    s_write(usage, cache_write)
    s_write_1h(usage, cache_write_1h)
    s_out(usage, output)
    s_reasoning(usage, reasoning)
    s_tier(usage, service_tier)
    return usage


def _cost(
    input: Decimal | None,
    cached_input: Decimal | None,
    cache_write: Decimal | None,
    output: Decimal | None,
    reasoning: Decimal | None,
    total: Decimal | None,
) -> Cost:
    """``Cost(...)`` with every part given (see above)."""
    cost = _NEW(Cost)
    s_in, s_cached, s_write, s_out, s_reasoning, s_total = _COST_SLOTS
    s_in(cost, input)
    s_cached(cost, cached_input)
    s_write(cost, cache_write)
    s_out(cost, output)
    s_reasoning(cost, reasoning)
    s_total(cost, total)
    return cost


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None or b is None:
        return None
    return _CONTEXT.add(a, b)
