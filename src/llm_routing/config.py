"""Old home of `from_config`, kept so existing imports work; see ``router.from_config``."""

from llm_routing.router.from_config import from_config

__all__ = ["from_config"]
