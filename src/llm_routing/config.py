"""Old home of `from_config`, kept so existing imports work; see ``router.from_config``."""

from llm_routing.router.from_config import from_config, read_source

# `llm-routing simulate` imported the private reader under this name.
_parsed = read_source
# Doctest runs of this old path still find from_config's examples (doctest's own hook).
__test__ = {"from_config": from_config}

__all__ = ["from_config"]
