"""A model's prices prepared once, so pricing a call costs a few multiplications.

``cost.pricing`` is the reference: `price` and `estimate_cost` re-read the spec, check their
arguments and scale each rate from per-million to per-token on every call. The tracker prices
every call twice (the worst case it holds before, the real usage after) with the same few
tables, so `RateCard` keeps each table's per-token rates, computed once, and gives exactly the
same ``Decimal`` values (same digits, same exponent: records keep their text) as the reference;
``tests/unit/test_cost_rates.py`` holds them equal.

Why the results are identical: ``per_million * tokens`` scaled by ``1e-6`` and
``(per_million scaled by 1e-6) * tokens`` have the same coefficient and exponent, and both are
computed in the same 60-digit context, where no catalogue price rounds.
"""

from __future__ import annotations

from decimal import Decimal

from llm_routing.catalog.spec import ModelSpec, Price
from llm_routing.cost.amounts import _CONTEXT, _ZERO, Cost, TokenUsage, _cost
from llm_routing.cost.pricing import _MILLION_EXP, ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER

__all__ = ["RateCard", "Rates"]

_MULTIPLY = _CONTEXT.multiply
_ADD = _CONTEXT.add


def _per_token(per_million: Decimal | None) -> Decimal | None:
    return None if per_million is None else per_million.scaleb(_MILLION_EXP, _CONTEXT)


def _dearest(*prices: Decimal | None) -> Decimal | None:
    known = [p for p in prices if p is not None]
    return max(known) if known else None


class Rates:
    """One price table's rates per token: what `price_tokens` and `estimate_cost` multiply by."""

    __slots__ = (
        "cache_write",
        "cache_write_1h",
        "cached_input",
        "complete",
        "input",
        "most_input",
        "most_output",
        "most_usd_terms",
        "output",
        "plain",
        "reasoning",
    )

    def __init__(self, table: Price, provider: str) -> None:
        self.input = _per_token(table.input)
        self.cached_input = _per_token(table.cached_input)
        self.cache_write = _per_token(table.cache_write)
        write_1h = table.cache_write
        if provider == "anthropic" and table.input is not None:
            write_1h = _CONTEXT.multiply(table.input, ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER)
        self.cache_write_1h = _per_token(write_1h)
        self.output = _per_token(table.output)
        self.reasoning = _per_token(table.reasoning_or_output)
        known = table.input is not None and table.output is not None
        # estimate_cost: input at the dearer of input and cache writes, output at the dearer
        # of output and reasoning; unknown (None) when input or output has no price.
        self.most_input = _per_token(_dearest(table.input, table.cache_write)) if known else None
        self.most_output = _per_token(_dearest(table.output, table.reasoning)) if known else None
        # `most_usd`'s exact fractions: (a, b, d) with most = (a·prompt + b·completion) / d.
        self.most_usd_terms: tuple[int, int, int] | None = None
        if self.most_input is not None and self.most_output is not None:
            n_in, d_in = self.most_input.as_integer_ratio()
            n_out, d_out = self.most_output.as_integer_ratio()
            self.most_usd_terms = (n_in * d_out, n_out * d_in, d_in * d_out)
        # Whether any usage (``complete``), or usage without cache or reasoning tokens
        # (``plain``), has a known price here: `RateCard.deferred`.
        self.plain = self.input is not None and self.output is not None
        self.complete = self.plain and None not in (
            self.cached_input,
            self.cache_write,
            self.cache_write_1h,
            self.reasoning,
        )

    def cost(self, tokens: TokenUsage) -> Cost:
        """``price_tokens(tokens, table, provider=…)``, the same values and exponents."""
        return _cost(*self._parts(tokens))

    def total(self, tokens: TokenUsage) -> Decimal | None:
        """``self.cost(tokens).total``, without building the `Cost` (a ledger's totals)."""
        return self._parts(tokens)[5]

    def _parts(self, tokens: TokenUsage) -> tuple[Decimal | None, ...]:
        """The parts of `cost` (input, cached, writes, output, reasoning) and their total."""
        n = tokens.input
        inputs = _ZERO if n == 0 else (None if self.input is None else _MULTIPLY(self.input, n))
        n = tokens.output
        output = _ZERO if n == 0 else (None if self.output is None else _MULTIPLY(self.output, n))
        if not (tokens.cached_input or tokens.cache_write or tokens.cache_write_1h) and not (
            tokens.reasoning
        ):  # the plain answer: input and output only; summed in price_tokens' order
            # price_tokens sums 0 + each part in turn: exact additions of non-negative values,
            # so the value is inputs + output and the exponent the least of theirs and 0's.
            plain = None
            if inputs is not None and output is not None:
                plain = _ADD(_ADD(inputs, output), _ZERO)
            return (inputs, _ZERO, _ZERO, output, _ZERO, plain)
        cached = self._part(tokens.cached_input, self.cached_input)
        writes_5m = self._part(tokens.cache_write, self.cache_write)
        writes_1h = self._part(tokens.cache_write_1h, self.cache_write_1h)
        writes = None if writes_5m is None or writes_1h is None else _ADD(writes_5m, writes_1h)
        reasoning = self._part(tokens.reasoning, self.reasoning)
        parts = (inputs, cached, writes, output, reasoning)
        total: Decimal | None = _ZERO
        for value in parts:
            total = None if total is None or value is None else _ADD(total, value)
        return (inputs, cached, writes, output, reasoning, total)

    @staticmethod
    def _part(tokens: int, rate: Decimal | None) -> Decimal | None:
        if tokens == 0:
            return _ZERO
        return None if rate is None else _MULTIPLY(rate, tokens)

    def most(self, prompt: int, completion: int) -> Decimal | None:
        """``estimate_cost``'s worst case for this table (``None``: input or output unpriced)."""
        if self.most_input is None or self.most_output is None:
            return None
        inputs = _ZERO if prompt == 0 else _MULTIPLY(self.most_input, prompt)
        outputs = _ZERO if completion == 0 else _MULTIPLY(self.most_output, completion)
        return _ADD(inputs, outputs)

    def most_usd(self, prompt: int, completion: int) -> float | None:
        """``float(self.most(prompt, completion))``, without any ``Decimal`` arithmetic.

        What a call without a budget shows as its estimate: the same float, because both are
        the exact worst case rounded once (``most`` is exact in its 60-digit context, and
        ``float`` of a ``Decimal`` and ``int / int`` both round correctly), at a fraction of
        the cost: ints instead of two ``Decimal`` products, a sum and a conversion.
        """
        terms = self.most_usd_terms
        if terms is None:
            return None
        per_prompt, per_completion, denominator = terms
        return (per_prompt * prompt + per_completion * completion) / denominator


class RateCard:
    """A spec's tables as `Rates`, prepared on first use (a tier, a long-context table)."""

    __slots__ = ("_rates", "_standard", "spec")

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        # Keyed by the table's id: the spec holds every table, so no id is reused meanwhile.
        self._rates: dict[int, Rates] = {}
        # Most calls: the standard tier of a price without a long-context table, whatever
        # the prompt's size, so price_for's four lookups are skipped.
        price = spec.price
        self._standard = (
            Rates(price, spec.provider)
            if price is not None and price.long_context is None
            else None
        )

    def rates(self, tier: str | None, prompt_tokens: int) -> Rates | None:
        """The rates of a call in ``tier`` with this prompt (``None``: no table, unknown)."""
        if tier is None and self._standard is not None:
            return self._standard
        table = self.spec.price_for(tier, prompt_tokens)
        if table is None:
            return None
        rates = self._rates.get(id(table))
        if rates is None:
            rates = self._rates[id(table)] = Rates(table, self.spec.provider)
        return rates

    def price(self, tokens: TokenUsage) -> Cost:
        """``price(tokens, spec)``: billed at the tier the tokens say served them."""
        tier = tokens.service_tier
        if tier is None and self._standard is not None:  # most calls: `rates` without a call
            return self._standard.cost(tokens)
        rates = self.rates(tier, tokens.prompt_tokens)
        if rates is None:
            return Cost.unknown() if tokens.total_tokens else Cost.zero()
        return rates.cost(tokens)

    def deferred(self, tokens: TokenUsage) -> Rates | None:
        """The rates that will price ``tokens`` when the cost is first read, if known for sure.

        A recorded call's cost is read rarely (totals, a report) and pricing it is the
        tracker's dearest step per call (``Decimal`` products and a `Cost`), so a record may
        hold these rates instead (`CostRecord.cost` prices on first read: the same value).
        Only when the price is certain to be known, so an unknown price is still warned about
        at the call; ``None``: price now.
        """
        rates = self._standard
        if rates is None or tokens.service_tier is not None:
            return None
        if rates.complete:
            return rates
        t = tokens
        plain = not (t.cached_input or t.cache_write or t.cache_write_1h or t.reasoning)
        return rates if rates.plain and plain else None

    def estimate(self, prompt: int, completion: int, tier: str | None) -> Decimal | None:
        """``estimate_cost(spec, prompt, completion, tier)`` for counts already checked."""
        rates = self.rates(tier, prompt)
        return None if rates is None else rates.most(prompt, completion)

    def estimate_usd(self, prompt: int, completion: int, tier: str | None) -> float | None:
        """``float(self.estimate(...))``, for a call that holds nothing (`Rates.most_usd`)."""
        rates = self.rates(tier, prompt)
        return None if rates is None else rates.most_usd(prompt, completion)
