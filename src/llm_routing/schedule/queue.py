"""Moved: ``Admission`` and ``Ticket`` live in ``schedule.admission``; old imports still work."""

from llm_routing.schedule.admission import Admission, Ticket

__all__ = ["Admission", "Ticket"]
