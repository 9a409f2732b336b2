"""The scheduling policy as one Redis Lua script, for ``schedule.redis.RedisBackend``.

The Lua lives in ``policy.lua`` beside this module (package data, read once at import): one
program that Redis loads once, kept as one text to check against ``policy.py``.

It is a line-by-line port of ``policy`` (decide, admit, settle, release, cooldown, correct,
snapshot): same predicates, same float arithmetic in the same order, so both backends agree to
the bit. It owns the layout of one key's state in Redis; projections run ``policy.project`` in
Python on the state the ``load`` operation returns.

Keys (one hash tag, so a cluster keeps them on one slot): ``S`` numbers (totals, cuts, cooldown,
...), ``L`` the minute log and ``D`` the rolling day log (entry ids in admission order), ``E``
the entries (id -> packed fields), ``I`` in-flight request ids (rid -> entry id), and ``Zr``,
``Zt``, ``Zi``, ``Zo`` the synthetic usage from provider headers (score = expiry).
An entry is packed as ``t late req inp out flags day_end =rid``; ``flags`` is three digits
(in the day log's window, still in ``L``, still in ``D``) and ``=rid`` is present while in flight.

ARGV: op, now ("" reads ``TIME``), idle expiry (s), channel, origin, key name, then the
operation's own arguments (limits are ``window rpm tpm itpm otpm rpd max_concurrency smoothing
day day_start epoch_offset raw_rpm raw_tpm raw_itpm raw_otpm``, "" for None, effective values
for the first four limits).
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["KEY_SUFFIXES", "POLICY_LUA"]

KEY_SUFFIXES = ("S", "L", "D", "E", "I", "Zr", "Zt", "Zi", "Zo")
"""The state keys of one scheduling key, in the order the script takes them."""

POLICY_LUA = files(__package__).joinpath("policy.lua").read_text(encoding="utf-8")
"""The script's text (``policy.lua``)."""
