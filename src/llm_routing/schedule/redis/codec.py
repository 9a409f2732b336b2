"""The script's wire format: Python values as its ARGV strings, its replies as Python values.

One encoder per operation and the decoders of its replies, pure and shared by the sync and the
async runner of ``RedisBackend``. The layout of the state in Redis is the script's (``script``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from llm_routing.schedule import policy
from llm_routing.schedule.clock import Clock
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.state import ModelState, _Entry

__all__ = [
    "acquire_args",
    "check_key",
    "check_rid",
    "correct_args",
    "decision",
    "epoch_offset",
    "load_args",
    "settle_args",
    "snapshot_of",
    "state_from",
    "text",
    "until_arg",
]

_DIMS = ("req", "tok", "inp", "out")


def text(value: Any) -> str:
    """A reply item as str (the client may hand bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


@lru_cache(maxsize=256)
def _limit_args(limits: RateLimits) -> tuple[str, ...]:
    """The script's limit arguments (effective limits first, raw ones for ``correct``)."""
    return (
        repr(float(limits.window_s)),
        _opt(limits.effective_rpm),
        _opt(limits.effective_tpm),
        _opt(limits.effective_itpm),
        _opt(limits.effective_otpm),
        _opt(limits.rpd),
        _opt(limits.max_concurrency),
        "1" if limits.smoothing else "0",
        limits.day,
        repr(float(limits.day_start_utc_s)),
    )


def _raw_limits(limits: RateLimits) -> tuple[str, ...]:
    return (_opt(limits.rpm), _opt(limits.tpm), _opt(limits.itpm), _opt(limits.otpm))


def _check_tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 tokens, got {value}")
    return value


def _header_arg(value: float | None) -> str:
    """A header value as the script reads it (checked by `RateLimitHeaders`); "" for none."""
    return "" if value is None else repr(float(value))


def check_key(key: object) -> str:
    """``key`` checked: a str naming the scheduling key."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (a model, or model + API key), got {key!r}")
    return key


def check_rid(rid: object) -> str:
    """``rid`` checked: a str naming the request."""
    if not isinstance(rid, str):
        raise TypeError(f"rid must be a str naming the request, got {rid!r}")
    return rid


def decision(raw: Sequence[Any], rid: str) -> Decision:
    """The ``acquire`` reply as a `Decision`."""
    if int(raw[0]) == -1:
        raise ValueError(f"request id {rid!r} is already in flight; use a fresh id per request")
    binding = text(raw[2])
    return Decision(int(raw[0]) == 1, float(text(raw[1])), binding or None, None, int(raw[3]) == 1)


def _entries(ids: Sequence[Any], values: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """Parse stored entries (``t late req inp out flags day_end [=rid]``) into policy entries."""
    for ident, packed in zip(ids, values, strict=True):
        parts = (packed.decode() if isinstance(packed, bytes) else packed).split(" ", 7)
        entry = _Entry(
            float(parts[0]),
            int(float(parts[3])),
            int(float(parts[4])),
            parts[5][0] == "1",
            float(parts[6]),
        )
        entry.late = float(parts[1])
        entry.req = int(float(parts[2]))
        yield ident, entry


def state_from(raw: Sequence[Any], epoch_offset: float) -> tuple[float, ModelState]:
    """Rebuild a `ModelState` from the script's ``load`` answer (in-flight ids left out)."""
    now = float(text(raw[0]))
    state = ModelState(epoch_offset)
    flat = [text(item) for item in raw[1]]
    fields = {flat[i]: float(flat[i + 1]) for i in range(0, len(flat), 2)}
    state.requests = int(fields["req"])
    state.tokens = int(fields["tok"])
    state.input_tokens = int(fields["inp"])
    state.output_tokens = int(fields["out"])
    state.cut = fields["cut"]
    state.day_requests = int(fields["dreq"])
    state.day_cut = fields["dcut"]
    state.cal_end = fields["cend"]
    state.cal_requests = int(fields["creq"])
    state.cooldown_until = fields["cool"]
    state.pace_req = fields.get("preq", -math.inf)
    state.pace_slow = fields.get("pslow", 1.0)
    state.pace_tok = fields.get("ptok", -math.inf)
    state.pace_inp = fields.get("pinp", -math.inf)
    state.high = fields["high"]
    state.window_s = fields["win"]
    entries: dict[Any, Any] = {}
    for ident, entry in _entries(*raw[2]):
        entries[ident] = entry
        state.log.append(entry)
    for ident, entry in _entries(*raw[3]):
        state.day_log.append(entries.get(ident, entry))
    for dim, members in zip(_DIMS, raw[4:8], strict=True):
        items = []
        for member in members:
            at, units, _ = text(member).split(" ", 2)
            items.append((float(at), int(float(units))))
        state.synthetic[dim] = sorted(items)
        state.synthetic_total[dim] = int(fields[f"s_{dim}"])
    return now, state


def epoch_offset(clock: Clock) -> float:
    """UTC epoch seconds minus ``clock``'s time: the script's scale for calendar days."""
    wall = getattr(clock, "wall", None)
    now = clock.now()
    return (float(wall()) if callable(wall) else time.time()) - now


def acquire_args(
    limits: RateLimits, request: Request, rid: str, offset: str, lease_s: float | None
) -> list[str]:
    """``acquire``: decide and reserve ``request`` for ``rid`` (its slot a lease of ``lease_s``)."""
    return [
        *_limit_args(limits),
        offset,
        *_raw_limits(limits),
        str(request.input_tokens),
        str(request.output_tokens),
        rid,
        "" if lease_s is None else repr(lease_s),
    ]


def settle_args(
    limits: RateLimits,
    rid: str,
    input_tokens: int,
    output_tokens: int,
    answered_at: float | None,
    offset: str,
) -> list[str]:
    """``settle``: the real usage of ``rid``, counted from ``answered_at`` when given."""
    _check_tokens("input_tokens", input_tokens)
    _check_tokens("output_tokens", output_tokens)
    answered = "" if answered_at is None or answered_at != answered_at else repr(float(answered_at))
    return [
        *_limit_args(limits),
        offset,
        *_raw_limits(limits),
        rid,
        str(input_tokens),
        str(output_tokens),
        answered,
    ]


def until_arg(until: float) -> str:
    """``cooldown``: its end, checked as ``policy.cooldown`` checks it."""
    if isinstance(until, bool) or not isinstance(until, int | float):
        raise TypeError(f"cooldown until must be a time in seconds, got {until!r}")
    if until != until:
        raise ValueError("cooldown until must be a time in seconds, got nan")
    return repr(float(until))


def correct_args(limits: RateLimits, headers: RateLimitHeaders, offset: str) -> list[str]:
    """``correct``: the provider's remaining counts and resets, per dimension."""
    if not isinstance(headers, RateLimitHeaders):
        raise TypeError(f"headers must be a RateLimitHeaders, got {type(headers).__name__}")
    args = [*_limit_args(limits), offset, *_raw_limits(limits)]
    for _what, remaining, reset in headers.dimensions():
        args.append(_header_arg(remaining))
        args.append(_header_arg(reset))
    return args


def load_args(
    limits: RateLimits, pending: Sequence[Request], request: Request, offset: str
) -> list[str]:
    """``load``: the state to project on, or "all fit now" when the script can tell alone."""
    # The script may answer "all fit now" itself when nothing can be skipped or spaced.
    empty = ModelState()
    fast = not limits.smoothing and not any(
        policy.decide(empty, limits, 0.0, item).never is not None for item in (*pending, request)
    )
    return [
        *_limit_args(limits),
        offset,
        *_raw_limits(limits),
        str(len(pending)),
        str(sum(item.input_tokens for item in pending)),
        str(sum(item.output_tokens for item in pending)),
        "1" if fast else "0",
        str(request.input_tokens),
        str(request.output_tokens),
    ]


def snapshot_of(raw: Sequence[Any]) -> dict[str, Any]:
    """The ``snapshot`` reply as ``Backend.snapshot`` returns it."""
    values = [text(item) for item in raw]
    return {
        "requests_in_window": int(float(values[0])),
        "tokens_in_window": int(float(values[1])),
        "input_tokens_in_window": int(float(values[2])),
        "output_tokens_in_window": int(float(values[3])),
        "requests_today": int(float(values[4])),
        "cooldown_until": float(values[5]) if values[5] else None,
        "in_flight": int(float(values[6])),
        "window_s": float(values[7]),
    }
