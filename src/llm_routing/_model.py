"""Moved to `llm_routing._facts`; this path stays importable for the modules that still use it."""

from llm_routing._facts import *  # noqa: F403
from llm_routing._facts import __all__ as __all__
