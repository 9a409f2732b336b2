"""Old home of `redact_url` and `scheme_of`, kept so existing imports work; see ``_redact``."""

from llm_routing._redact import redact_url, scheme_of

__all__ = ["redact_url", "scheme_of"]
