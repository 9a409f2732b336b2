"""Building routers: `build_router`, `init_model`, and the names a router gives its models.

Owns turning names or instances into decorated models (``guard | scheduler | tracker``), the
checks of `build_router`'s arguments (each error names the argument, so `from_config` can map
it back to its key in the file), ordering large-context models by window, and the warning for
a model whose SDK retries on its own. What a router does with its models is `Router`'s.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.runnables import Runnable

from llm_routing._args import check_number, is_int
from llm_routing._decorator import Decorator, DecoratorStack
from llm_routing.catalog import ModelSpec
from llm_routing.guard import ContextGuard
from llm_routing.router.router import Router

__all__ = ["SEED_PROVIDERS", "Parts", "build_router", "init_model", "unique_names"]

_EXTRA_HINT = "pip install 'llm-routing[models]' (or: pip install langchain)"
SEED_PROVIDERS = {
    "google": "google_genai",
    "gemini": "google_genai",
    "vertex": "google_vertexai",
    "mistral": "mistralai",
    "azure": "azure_openai",
}
"""The seed wrote ``provider/model`` with its own provider names; LangChain wants these."""


def _split_name(text: str) -> tuple[str | None, str]:
    """``provider:model`` or the seed's ``provider/model`` -> (LangChain provider, model)."""
    for sep in (":", "/"):
        head, found, tail = text.partition(sep)
        if found and head and tail:
            provider = head.strip().lower()
            provider = SEED_PROVIDERS.get(provider, provider)
            if sep == ":" or provider in _known_langchain_providers():
                return provider, tail.strip()
    return None, text.strip()


def _known_langchain_providers() -> frozenset[str]:
    try:
        from langchain.chat_models import base
    except ImportError:
        return frozenset(SEED_PROVIDERS.values()) | {"openai", "anthropic"}
    return frozenset(getattr(base, "_BUILTIN_PROVIDERS", ())) | {"openai", "anthropic"}


def init_model(name: str, **kwargs: Any) -> Runnable[Any, Any]:
    """Build the chat model ``name`` (``"openai:gpt-4o-mini"``) as `build_router` would.

    Uses LangChain's ``init_chat_model`` with the SDK's own retries off (``max_retries=0``,
    unless ``kwargs`` says otherwise): retries belong to the scheduler, and an SDK that
    retries on its own delays the fallback and multiplies the scheduler's retries. Use it to
    give one model of a router its own kwargs (a different ``base_url`` or key), then pass
    the instance to `build_router`.

    Example:
        >>> from llm_routing import init_model
        >>> init_model("openai:gpt-4o-mini", api_key="unused").max_retries
        0
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"init_model(name=…) needs a model name such as 'openai:gpt-4o-mini', got {name!r}"
        )
    return _init_model(name, kwargs, "init_model")


def _init_model(text: str, init_kwargs: Mapping[str, Any], who: str) -> Runnable[Any, Any]:
    """``init_chat_model`` with SDK retries off; errors start with ``who`` (the list position)."""
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise ImportError(
            f"{who} got the model name {text!r}; building models from names needs "
            f"LangChain's init_chat_model: {_EXTRA_HINT}. Or pass a chat model instance."
        ) from None
    provider, name = _split_name(text)
    kwargs = {"max_retries": 0, **init_kwargs}
    try:
        model = cast("Runnable[Any, Any]", init_chat_model(name, model_provider=provider, **kwargs))
    except ImportError as exc:
        raise ImportError(f"{who} cannot build {text!r}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(
            f"{who} cannot build {text!r}: {exc}. Write models as 'provider:model', "
            "e.g. 'openai:gpt-4o-mini', or pass a chat model instance."
        ) from exc
    return model


def _warn_if_retrying(model: Any, where: str, who: str = "build_router") -> None:
    retries = getattr(model, "max_retries", None)
    if is_int(retries) and retries > 0:
        warnings.warn(
            f"{who}: {where} ({type(model).__name__}) has max_retries={retries}: its SDK "
            "retries on its own before the router can fall back, and its retries would multiply "
            "with the scheduler's. Construct it with max_retries=0.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside llm_routing: the user's call, however deep."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _as_list(name: str, value: Any, who: str = "build_router") -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Runnable):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(
        f"{who}({name}=…) must be a list of models (names or chat model instances), "
        f"got {type(value).__name__}"
    )


def _decorator_slot(
    name: str, value: Any, who: str = "build_router"
) -> Decorator | Literal[False] | None:
    if value is None or value is False or isinstance(value, Decorator):
        return value
    raise TypeError(
        f"{who}({name}=…) must be a Decorator instance (e.g. a shared {name} object), "
        f"None for a default one, or False for none; got {type(value).__name__}"
    )


class Parts:
    """What `build_router` resolves before it sees a model, and how it builds each model.

    The decorator stack (default guard, scheduler and tracker made once, from ``tier``,
    ``max_wait``, ``budget_usd``, ``backend``), the router's ``settings`` and `build` (a name or
    an instance -> the model and its spec, every check done). Its own object so that
    `llm_routing.middleware.RoutingMiddleware`, whose primary model arrives only with each agent
    call, resolves its arguments with the same code and the same errors (``who`` names the
    caller in them).
    """

    __slots__ = ("_init", "_limits_for", "_spec_guard", "settings", "stack", "who")

    def __init__(
        self,
        who: str,
        *,
        tier: str | Mapping[str, str] = "tier1",
        max_wait: float = 90.0,
        budget_usd: float | None = None,
        guard: ContextGuard | Decorator | Literal[False] | None = None,
        scheduler: Decorator | Literal[False] | None = None,
        tracker: Decorator | Literal[False] | None = None,
        backend: Any = "memory",
        langfuse: Any = False,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(tier, str | Mapping):
            raise TypeError(
                f"{who}(tier=…) must be a tier name such as 'tier1' or a mapping "
                f"{{provider: tier}}, got {type(tier).__name__}"
            )
        check_number(who, "max_wait", max_wait)
        check_number(who, "budget_usd", budget_usd, allow_none=True)
        if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
            raise TypeError(
                f"{who}(init_kwargs=…) must be a mapping, got {type(init_kwargs).__name__}"
            )
        scheduler = _decorator_slot("scheduler", scheduler, who)
        tracker = _decorator_slot("tracker", tracker, who)
        customised = tier != "tier1" or max_wait != 90.0 or backend != "memory"
        if scheduler is None:
            from llm_routing.schedule import RateScheduler

            scheduler = RateScheduler(tier=tier, max_wait=max_wait, backend=backend)
        elif customised:
            raise ValueError(
                f"{who}: tier, max_wait and backend configure the default scheduler; "
                + (
                    "with scheduler=False there is none to configure. Drop them or let the "
                    "router build its scheduler."
                    if scheduler is False
                    else "you passed your own scheduler, so set them on it: "
                    "RateScheduler(tier=…, max_wait=…, backend=…)."
                )
            )
        if tracker is None:
            from llm_routing.cost import CostTracker

            # A shared backend shares the budget too: N workers, one ledger.
            ledger = None if backend in ("memory", None) else backend
            if ledger is not None and not isinstance(ledger, str):
                ledger = None  # a Backend instance is the scheduler's; the ledger stays in memory
            tracker = CostTracker(budget_usd=budget_usd, backend=ledger, max_wait=max_wait)
        elif budget_usd is not None:
            raise ValueError(
                f"{who}(budget_usd=…) configures the default tracker; "
                + (
                    "with tracker=False nothing would enforce it. Drop tracker=False."
                    if tracker is False
                    else "you passed your own tracker, so set it there: CostTracker(budget_usd=…)."
                )
            )
        if guard is None:
            guard = ContextGuard()
        elif guard is not False and not isinstance(guard, Decorator):
            raise TypeError(
                f"{who}(guard=…) must be a ContextGuard (or another Decorator), None for a "
                f"default guard, or False for none; got {type(guard).__name__}"
            )
        handler = _langfuse_handler(langfuse)
        recorder: Decorator | None = None
        if handler is not None:
            from llm_routing.observe import RefusalRecorder

            # Refusals before the network start no model run; this records them as generations.
            recorder = RefusalRecorder()
        decorators = tuple(
            d for d in (recorder, guard, scheduler, tracker) if isinstance(d, Decorator)
        )
        self.who = who
        self.stack: DecoratorStack | None = DecoratorStack(*decorators) if decorators else None
        self._init = dict(init_kwargs or {})
        self._spec_guard = guard if isinstance(guard, ContextGuard) else ContextGuard()
        self._limits_for = getattr(scheduler, "limits_for", None)
        self.settings: dict[str, Any] = {
            "tier": tier,
            "max_wait": max_wait,
            "budget_usd": budget_usd,
            "backend": backend,
            "langfuse": handler,
            "guard": guard or None,
            "scheduler": scheduler or None,
            "tracker": tracker or None,
        }

    def build(self, item: Any, where: str) -> tuple[Runnable[Any, Any], ModelSpec]:
        """``item`` (a name or an instance) as a model and its spec; ``where`` names it."""
        who = self.who
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"{who}({where}) got an empty model name")
            model = _init_model(item, self._init, f"{who}({where})")
        elif isinstance(item, Runnable):
            model = item
            _warn_if_retrying(model, where, who)
        else:
            raise TypeError(
                f"{who}({where}) must be a model name such as 'openai:gpt-4o-mini' or a "
                f"chat model instance, got {type(item).__name__}"
            )
        try:
            spec = self._spec_guard.spec_for(model)
            if callable(self._limits_for):
                self._limits_for(model)  # a tier the model does not have fails now, not mid-run
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{who}({where}): {exc}") from None
        return model, spec

    def fallbacks(
        self, fallbacks: Any, large_context: Any
    ) -> list[tuple[Runnable[Any, Any], ModelSpec]]:
        """The models after the primary: ``fallbacks`` in order, then ``large_context`` by window.

        Large-context candidates go smallest window first, so an oversize input lands on the
        smallest model that fits.
        """
        who = self.who
        entries = [
            self.build(m, f"fallbacks[{i}]")
            for i, m in enumerate(_as_list("fallbacks", fallbacks, who))
        ]
        large = [
            self.build(m, f"large_context[{i}]")
            for i, m in enumerate(_as_list("large_context", large_context, who))
        ]
        return entries + sorted(large, key=lambda entry: entry[1].context_window)

    def wrap(self, model: Runnable[Any, Any]) -> Runnable[Any, Any]:
        """``model`` inside the decorator stack (as it is, with every slot ``False``)."""
        return self.stack.wrap(model) if self.stack is not None else model


def unique_names(specs: Sequence[ModelSpec]) -> list[str]:
    """Each spec's ``provider:model`` key, a repeat numbered (``openai:gpt-4o-mini#2``)."""
    names: list[str] = []
    for spec in specs:
        name, n = spec.key, 2
        while name in names:
            name, n = f"{spec.key}#{n}", n + 1
        names.append(name)
    return names


def build_router(
    primary: str | Runnable[Any, Any],
    fallbacks: Sequence[str | Runnable[Any, Any]] = (),
    large_context: Sequence[str | Runnable[Any, Any]] = (),
    *,
    tier: str | Mapping[str, str] = "tier1",
    max_wait: float = 90.0,
    budget_usd: float | None = None,
    guard: ContextGuard | Decorator | Literal[False] | None = None,
    scheduler: Decorator | Literal[False] | None = None,
    tracker: Decorator | Literal[False] | None = None,
    backend: Any = "memory",
    langfuse: Any = False,
    init_kwargs: Mapping[str, Any] | None = None,
) -> Router:
    """Build a `Router`: ``primary``, then ``fallbacks``, then ``large_context`` by window.

    Models are chat model instances or names (``"openai:gpt-4o-mini"``, the seed's
    ``"openai/gpt-4o-mini"``), built with `init_model` (``max_retries=0``) plus
    ``init_kwargs`` (``base_url``, ``api_key``, ``temperature``…). Large-context candidates
    are ordered by context window, smallest first, so an oversize input lands on the
    smallest model that fits.

    Every model is wrapped in ``guard | scheduler | tracker``. Each slot takes a shared
    instance (to share its state across routers), ``None`` for a default one, or ``False``
    to leave it out: the default guard is ``ContextGuard()``, the default scheduler
    ``RateScheduler(tier=tier, max_wait=max_wait, backend=backend)``, the default tracker
    ``CostTracker(budget_usd=budget_usd, max_wait=max_wait)``. ``tier``, ``max_wait`` and
    ``backend`` configure the default scheduler, and ``max_wait`` also bounds how long the
    default tracker waits for calls in flight to free budget, so a caller who will not wait
    (``max_wait=0``) is refused at once by either (a ``"redis://…"`` URL also gives the
    default tracker a Redis ledger, so workers share one budget); ``budget_usd`` configures
    only the default tracker. Combined with an instance of your own they are an error rather
    than silently ignored.

    ``langfuse=True`` (Langfuse configured from the environment) or a Langfuse client adds
    llm_routing's Langfuse handler to every call, so each attempt is one generation with its
    cost, usage and the decorators' metadata (``pip install 'llm-routing[langfuse]'``).

    Example:
        >>> from llm_routing import build_router
        >>> router = build_router(
        ...     "openai:gpt-4o-mini",
        ...     fallbacks=["openai:gpt-4o"],
        ...     large_context=["openai:gpt-4.1-mini"],
        ...     init_kwargs={"api_key": "unused"},
        ... )
        >>> router.names
        ('openai:gpt-4o-mini', 'openai:gpt-4o', 'openai:gpt-4.1-mini')
        >>> router.stats()["total_requests"], router.stats()["total_cost"]
        (0, 0.0)
    """
    parts = Parts(
        "build_router",
        tier=tier,
        max_wait=max_wait,
        budget_usd=budget_usd,
        guard=guard,
        scheduler=scheduler,
        tracker=tracker,
        backend=backend,
        langfuse=langfuse,
        init_kwargs=init_kwargs,
    )
    if primary is None:
        raise TypeError("build_router(primary=…) needs a model name or a chat model, got None")
    entries = [parts.build(primary, "primary"), *parts.fallbacks(fallbacks, large_context)]
    names = unique_names([spec for _model, spec in entries])
    models = [parts.wrap(model) for model, _ in entries]
    return Router(models, names, settings=parts.settings)


def _langfuse_handler(langfuse: Any) -> Any:
    """The callback handler ``langfuse=`` asks for (``None`` when off)."""
    if langfuse is False or langfuse is None:
        return None
    from llm_routing.observe import langfuse_handler

    if langfuse is True:
        return langfuse_handler()
    return langfuse_handler(client=langfuse)
