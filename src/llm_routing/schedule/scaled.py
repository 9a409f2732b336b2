"""Moved: ``ScaledClock`` lives in ``schedule.clock``; this path keeps old imports working."""

from llm_routing.schedule.clock import ScaledClock

__all__ = ["ScaledClock"]
