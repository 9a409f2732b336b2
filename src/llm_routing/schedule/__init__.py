"""The rate scheduler: per-model RPM/TPM/RPD limits, FIFO waits, retries and the max-wait rule.

``limits`` holds the values (limits, requests, decisions), ``policy`` the pure decisions (with
``windows``, ``settlement``, ``state`` and ``projection``), ``plan`` the pure max-wait rule;
``memory`` and ``redis`` keep the state, ``admission`` makes callers wait their turn (what
follows an admission is ``outcomes``'s), ``scheduler`` is the decorator users put on models
(its attempt loop ``loop``'s), ``resolve`` and ``overrides`` say which limits apply, ``clock``
and ``virtual`` make time injectable.
"""

from llm_routing.schedule.admission import Admission, Ticket
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, ScaledClock, SystemClock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.scheduler import DEFAULT_RESERVE_OUTPUT, RateScheduler
from llm_routing.schedule.virtual import VirtualClock

__all__ = [
    "DEFAULT_RESERVE_OUTPUT",
    "Admission",
    "Backend",
    "Clock",
    "MemoryBackend",
    "RateLimitHeaders",
    "RateLimits",
    "RateScheduler",
    "Request",
    "ScaledClock",
    "SystemClock",
    "Ticket",
    "VirtualClock",
]
