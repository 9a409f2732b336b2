"""The seed's entry point, `create_auto_picker_llm`, as a `build_router` call.

Kept for callers of the original package; new code calls `build_router`. Owns only the seed's
arguments and its default large-context companion per provider.
"""

from __future__ import annotations

from typing import Any

from llm_routing.catalog import default_catalog
from llm_routing.router.build import SEED_PROVIDERS, build_router
from llm_routing.router.router import Router

__all__ = ["create_auto_picker_llm"]

# Large-context companions for the seed's entry point, per LangChain provider.
_LARGE_CONTEXT_DEFAULTS = {
    "openai": "openai:gpt-4.1-mini",
    "anthropic": "anthropic:claude-sonnet-4-6",
    "google_genai": "google_genai:gemini-2.5-flash",
    "mistralai": "mistralai:mistral-large",
}


def _window(name: str) -> int:
    """The catalogued window of ``name``, 0 when the catalogue does not know it."""
    try:
        return default_catalog().get(name).context_window
    except (TypeError, ValueError):
        return 0


def create_auto_picker_llm(
    tier: str = "tier1",
    primary_provider: str = "openai",
    primary_model: str = "gpt-4o-mini",
    streaming: bool = False,
    enable_context_fallback: bool = True,
    **router_kwargs: Any,
) -> Router:
    """The seed's entry point, now a `build_router` call.

    Builds ``primary_provider:primary_model`` and, with ``enable_context_fallback``, the same
    provider's large-context model (``gpt-4.1-mini``, ``claude-sonnet-4-6``,
    ``gemini-2.5-flash``, ``mistral-large``) when its window is larger. ``streaming=True`` makes
    the models stream internally (``invoke`` still returns one message). Other keyword
    arguments (``fallbacks``, ``guard``, ``init_kwargs``…) go to `build_router`.

    Example:
        >>> from llm_routing import create_auto_picker_llm
        >>> create_auto_picker_llm(init_kwargs={"api_key": "unused"}).names
        ('openai:gpt-4o-mini', 'openai:gpt-4.1-mini')
    """
    if not isinstance(primary_provider, str) or not primary_provider.strip():
        raise ValueError(
            f"create_auto_picker_llm(primary_provider=…) must be a provider name such as "
            f"'openai', got {primary_provider!r}"
        )
    if not isinstance(primary_model, str) or not primary_model.strip():
        raise ValueError(
            f"create_auto_picker_llm(primary_model=…) must be a model name such as "
            f"'gpt-4o-mini', got {primary_model!r}"
        )
    provider = primary_provider.strip().lower()
    provider = SEED_PROVIDERS.get(provider, provider)
    init = dict(router_kwargs.pop("init_kwargs", None) or {})
    if streaming:
        init.setdefault("streaming", True)
    large = list(router_kwargs.pop("large_context", ()) or ())
    if enable_context_fallback and not large:
        candidate = _LARGE_CONTEXT_DEFAULTS.get(provider)
        if candidate is not None and _window(candidate) > _window(f"{provider}:{primary_model}"):
            large = [candidate]
    return build_router(
        f"{provider}:{primary_model}",
        large_context=large,
        tier=tier,
        init_kwargs=init,
        **router_kwargs,
    )
