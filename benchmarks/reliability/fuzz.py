"""Bad input, measured: generated inputs, odd constructor values and config-file mistakes.

Owns the hypothesis strategies, the harness (a router of three simulated models behind real
``ChatOpenAI`` clients), the outcome rules the tests assert and the figures the report prints.
It does not own the fault matrix, the soak or the secrets checks (their own engines).

Rules, for every generated input and every entry point (invoke, ainvoke, stream, astream,
batch): the outcome is a result or one of ``DOCUMENTED_ERRORS`` (docs/guide.md, section 8,
plus ``TypeError``/``ValueError`` for input a chat model cannot take); its message is
non-empty, printable as UTF-8 and, for a refused input, says what in the ``input`` was wrong;
a refused input sends no request and is counted by neither the scheduler, the tracker nor
the router; nothing runs past a liveness bound computed from the configured timeouts.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import openai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from llm_routing import (
    AllModelsFailedError,
    Budget,
    BudgetExceededError,
    ContextGuard,
    ContextLengthExceededError,
    CostTracker,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
    RateScheduler,
    build_router,
    from_config,
)
from llm_routing.errors import UnknownModelError
from llm_routing.sim import SimModel, SimulatedProvider

# --------------------------------------------------------------------------- outcome rules

# docs/guide.md section 8, most specific first (UnknownModelError is also a ValueError).
DOCUMENTED_ERRORS: tuple[type[BaseException], ...] = (
    AllModelsFailedError,
    ContextLengthExceededError,
    RateLimitExhaustedError,
    QuotaExceededError,
    ProviderUnavailableError,
    BudgetExceededError,
    UnknownModelError,
    # Section 3: a bad request the provider rejects propagates untouched (after a request).
    openai.BadRequestError,
    TypeError,
    ValueError,
)
# Subclasses of the documented types that still mean a bug here: a crash inside our code or
# an SDK's, not a decision about the input.
UNDOCUMENTED: tuple[type[BaseException], ...] = (
    KeyError,
    IndexError,
    AttributeError,
    UnicodeError,
    AssertionError,
    RecursionError,
    NotImplementedError,
)
REFUSALS = (TypeError, ValueError)
"""Errors that mean "this input is wrong": they must come before any request or count."""

ENTRY_POINTS = ("invoke", "ainvoke", "stream", "astream", "batch")

# The three simulated models, with the catalogue's windows (the guard reads the catalogue).
SIM_MODELS = (
    SimModel(name="gpt-4o-mini", context_window=128_000),
    SimModel(name="gpt-4o", context_window=128_000),
    SimModel(name="gpt-4.1-mini", context_window=1_047_576),
)
_NAMES = ("openai:gpt-4o-mini", "openai:gpt-4o", "openai:gpt-4.1-mini")
# Limits far above what the fuzz sends: pacing is not under test here, bad input is.
_LIMITS = {name: {"rpm": 1_000_000, "tpm": 1_000_000_000, "rpd": None} for name in _NAMES}
CLIENT_TIMEOUT_S = 10.0
MAX_WAIT_S = 5.0
MAX_RETRIES = 1
BACKOFF_MAX_S = 2.0
# Not a performance bound: the longest a call may legitimately take, every model timing out
# on every try and backing off in between, plus slack for a multi-MB input on a busy machine.
LIVENESS_S = len(_NAMES) * ((MAX_RETRIES + 1) * CLIENT_TIMEOUT_S + BACKOFF_MAX_S + MAX_WAIT_S) + 30


def error_label(exc: BaseException) -> str:
    """The documented type ``exc`` counts as, or ``undocumented:<type>``."""
    if isinstance(exc, UNDOCUMENTED) or not isinstance(exc, DOCUMENTED_ERRORS):
        return f"undocumented:{type(exc).__name__}"
    return next(t.__name__ for t in DOCUMENTED_ERRORS if isinstance(exc, t))


def message_problems(exc: BaseException, must_mention: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with an error's message (empty: it says what was wrong, printably)."""
    text = str(exc)
    problems: list[str] = []
    if not text.strip():
        problems.append("empty message")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problems.append("message cannot be printed as UTF-8 (it quotes a lone surrogate)")
    if must_mention and not any(word in text for word in must_mention):
        problems.append(f"message names none of {must_mention}: {text[:200]!a}")
    return problems


def summarise(value: Any, limit: int = 80) -> str:
    """A short, ASCII-only description of a generated value (for reports and failures)."""
    if isinstance(value, str) and len(value) > limit:
        return f"str of {len(value):,} chars starting {value[:20]!a}"
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Outcome:
    """What one call did, and which rules it broke (``problems`` empty: it behaved)."""

    entry: str
    label: str
    sent: int
    seconds: float
    value: str
    message: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No rule broken."""
        return not self.problems


# --------------------------------------------------------------------------- the harness


class Harness:
    """Three simulated models, one router over real ``ChatOpenAI`` clients, one event loop.

    The async entry points run on one long-lived loop in its own thread: langchain-openai
    caches an async HTTP client per base URL, which a loop per call would leave dangling.
    """

    def __init__(self) -> None:
        self.sim = SimulatedProvider(list(SIM_MODELS), seed=0)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="fuzz-loop", daemon=True
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-call")
        self.router: Any = None
        self.scheduler: RateScheduler | None = None
        self.tracker: CostTracker | None = None

    def start(self) -> Harness:
        """Start the simulator and the loop, and build the router."""
        self.sim.start()
        self._loop_thread.start()
        self.scheduler = RateScheduler(
            limits=_LIMITS, max_wait=MAX_WAIT_S, max_retries=MAX_RETRIES, backoff_max=BACKOFF_MAX_S
        )
        self.tracker = CostTracker()
        self.router = build_router(
            _NAMES[0],
            fallbacks=[_NAMES[1]],
            large_context=[_NAMES[2]],
            scheduler=self.scheduler,
            tracker=self.tracker,
            init_kwargs={
                "base_url": self.sim.base_url,
                "api_key": "sim",
                "timeout": CLIENT_TIMEOUT_S,
                "stream_usage": True,
            },
        )
        return self

    def close(self) -> None:
        """Stop everything this harness started."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)
        self.sim.stop()

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def counters(self) -> dict[str, int]:
        """Everything a request would move: simulator, scheduler, tracker, router."""
        models = self.sim.stats()["models"].values()
        assert self.scheduler is not None and self.tracker is not None
        scheduler = self.scheduler.stats()
        summary = self.tracker.summary()
        return {
            "sent": sum(m["requests_received"] for m in models),
            "admitted": scheduler["admitted"] + scheduler["refused_max_wait"],
            "tracked": sum(
                summary[k]
                for k in ("calls", "refused_calls", "error_calls", "cancelled_calls")
                if k in summary
            ),
            "routed": self.router.stats()["total_requests"],
        }

    def call(self, entry: str, value: Any) -> Any:
        """Run ``value`` through one entry point; raises what the router raised."""
        router = self.router
        if entry == "invoke":
            future = self._pool.submit(router.invoke, value)
        elif entry == "stream":
            future = self._pool.submit(lambda: list(router.stream(value)))
        elif entry == "batch":
            future = self._pool.submit(lambda: router.batch([value])[0])
        elif entry == "ainvoke":
            future = asyncio.run_coroutine_threadsafe(router.ainvoke(value), self._loop)
        elif entry == "astream":
            future = asyncio.run_coroutine_threadsafe(_collect(router.astream(value)), self._loop)
        else:
            raise ValueError(f"entry must be one of {ENTRY_POINTS}, got {entry!r}")
        try:
            return future.result(timeout=LIVENESS_S)
        except FutureTimeout:
            future.cancel()
            raise


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def check_input(harness: Harness, entry: str, value: Any) -> Outcome:
    """Run one generated input through one entry point and apply every rule."""
    before = harness.counters()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        harness.call(entry, value)
    except FutureTimeout:
        return Outcome(entry, "hang", 0, LIVENESS_S, summarise(value), problems=["hang"])
    except Exception as exc:
        error = exc
    except BaseException as exc:  # a Rust panic from a tokenizer is not an Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        error = exc
    seconds = time.perf_counter() - start
    after = harness.counters()
    moved = {k: after[k] - before[k] for k in before}
    outcome = Outcome(entry, "result", moved["sent"], seconds, summarise(value))
    if error is None:
        if moved["sent"] < 1:
            outcome.problems.append("a result without a request to the provider")
        return outcome
    outcome.label = error_label(error)
    outcome.message = str(error).encode("utf-8", "backslashreplace").decode("utf-8")
    if outcome.label.startswith("undocumented"):
        outcome.problems.append(f"undocumented {type(error).__name__}: {outcome.message!a}")
    if isinstance(error, REFUSALS) and not isinstance(error, openai.BadRequestError):
        outcome.problems += message_problems(error, ("input", "kwargs"))
        counted = {k: v for k, v in moved.items() if v}
        if counted:
            outcome.problems.append(f"refused input was sent or counted: {counted}")
    else:
        outcome.problems += message_problems(error)
    return outcome


# --------------------------------------------------------------------------- strategies

LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d")
ODD_TEXT = (
    "",
    "a\x00b",
    "\x00" * 10,
    "e\u0301",  # NFD
    unicodedata.normalize("NFD", "Ångström café"),
    "\ufeffBOM",
    "\u202eright-to-left",
    "\uffff\ufffe",
    "\U0010ffff",
    "\u0301\u0301\u0301",
    "😀" * 50,
    "\r\n\t\x0b\x0c",
    "{{not a template}}",
    '{"role": "user"}',
)


@cache
def huge_strings() -> tuple[str, ...]:
    """A few multi-MB inputs (built once; they are slow, so strategies pick them rarely)."""
    return (
        "word " * 700_000,  # 3.5 MB, ~700k tokens: only the 1M-window model fits it
        "x" * 3_000_000,  # one 3 MB "word" with no safe cut point
        " " * 2_000_000,  # a whitespace run past tiktoken's regex stack
        "\t" * 1_500_000,
        "日本語" * 1_000_000,  # 9 MB of UTF-8
        "ok " * 400_000 + "\ud800",  # a lone surrogate at the end of 1.2 MB
    )


def _with_surrogate() -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=20),
        st.sampled_from(LONE_SURROGATES),
        st.text(max_size=20),
    )


def texts() -> st.SearchStrategy[str]:
    """Short text: ordinary, odd Unicode, NUL bytes, lone surrogates."""
    return st.one_of(
        st.text(max_size=60),
        st.sampled_from(ODD_TEXT),
        _with_surrogate(),
        st.text(st.characters(codec="utf-8"), max_size=30),
    )


def _junk() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.binary(max_size=10),
        st.just(object()),
        st.just({1, 2}),
        st.just(Ellipsis),
    )


def _nested() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(_junk(), texts()),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.one_of(texts(), st.integers()), inner, max_size=3)
        ),
        max_leaves=8,
    )


def content_parts() -> st.SearchStrategy[Any]:
    """Multimodal and tool-call shaped content blocks, some malformed."""
    return st.one_of(
        texts(),
        st.builds(lambda t: {"type": "text", "text": t}, texts()),
        st.builds(lambda t: {"type": "text", "text": t}, _junk()),
        st.builds(
            lambda url, detail: {"type": "image_url", "image_url": {"url": url, "detail": detail}},
            st.sampled_from(
                [
                    "data:image/png;base64,iVBORw0KGgo=",
                    "data:image/png;base64,!!!",
                    "https://example.invalid/cat.png",
                    "",
                ]
            ),
            st.sampled_from(["low", "high", "auto", "weird", None]),
        ),
        st.builds(lambda u: {"type": "image_url", "image_url": u}, _junk()),
        st.builds(lambda d: {"type": "image", "source": d}, _nested()),
        st.builds(
            lambda name, args: {"type": "tool_call", "id": "call_1", "name": name, "args": args},
            texts(),
            _nested(),
        ),
        st.builds(lambda kind, extra: {"type": kind, "payload": extra}, texts(), _nested()),
        st.dictionaries(texts(), _nested(), max_size=3),
        _junk(),
    )


def contents() -> st.SearchStrategy[Any]:
    """A message's content: text, a list of parts, or something that is neither."""
    return st.one_of(texts(), st.lists(content_parts(), max_size=4), _junk(), _nested())


ROLES = (
    "user",
    "human",
    "assistant",
    "ai",
    "system",
    "developer",
    "tool",
    "function",
    "wizard",
    "",
    "USER",
    "\ud800",
)


def _tool_calls() -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.builds(
            lambda name, args, i: {"name": name, "args": args, "id": f"call_{i}"},
            texts(),
            st.dictionaries(st.text(max_size=5), st.one_of(texts(), st.integers()), max_size=3),
            st.integers(0, 9),
        ),
        max_size=2,
    )


def messages() -> st.SearchStrategy[Any]:
    """One message in every shape LangChain accepts, and shapes it does not."""
    role = st.one_of(st.sampled_from(ROLES), texts())
    return st.one_of(
        st.builds(lambda r, c: {"role": r, "content": c}, role, contents()),
        st.builds(
            lambda r, c, extra: {"role": r, "content": c, **extra},
            role,
            contents(),
            st.dictionaries(
                st.sampled_from(["name", "tool_calls", "tool_call_id", "id", "extra"]),
                _nested(),
                max_size=2,
            ),
        ),
        st.builds(lambda c: {"content": c}, contents()),
        st.tuples(role, contents()),
        st.tuples(role, texts(), texts()),
        st.builds(HumanMessage, content=texts()),
        st.builds(SystemMessage, content=texts()),
        st.builds(AIMessage, content=texts(), tool_calls=_tool_calls()),
        st.builds(ToolMessage, content=texts(), tool_call_id=texts()),
        st.builds(
            lambda parts: HumanMessage(content=parts),
            st.lists(content_parts().filter(lambda p: isinstance(p, str | dict)), max_size=3),
        ),
        _junk(),
        _nested(),
    )


def inputs(*, huge: bool = True) -> st.SearchStrategy[Any]:
    """Anything a caller might pass to ``router.invoke``."""
    options: list[st.SearchStrategy[Any]] = [
        texts(),
        st.lists(messages(), max_size=4),
        st.lists(messages(), min_size=1, max_size=3).map(tuple),
        st.builds(lambda m: {"messages": m}, st.lists(messages(), max_size=3)),
        st.dictionaries(texts(), _nested(), max_size=2),
        _junk(),
        _nested(),
    ]
    if huge:
        options.append(st.sampled_from(huge_strings()))
    return st.one_of(options)


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic (derandomized, no database), no deadline, huge values allowed."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# --------------------------------------------------------------------------- config values

NUMERIC = frozenset(
    {
        "max_wait",
        "budget_usd",
        "safety",
        "reserve_output",
        "request_margin",
        "token_headroom",
        "max_retries",
        "backoff_initial",
        "backoff_max",
        "quota_cooldown",
        "warn_at",
        "max_records",
        "limit_usd",
    }
)


def _build_router(**kwargs: Any) -> Any:
    return build_router(
        "openai:gpt-4o-mini",
        init_kwargs={"api_key": "unused", "base_url": "http://127.0.0.1:9/v1"},
        **kwargs,
    )


def _budget(**kwargs: Any) -> Any:
    return Budget(**{"limit_usd": 1, **kwargs})


def _arguments(function: Callable[..., Any], *skip: str) -> tuple[str, ...]:
    """Every parameter of ``function`` but ``skip``, so a new argument is fuzzed unlisted."""
    return tuple(name for name in inspect.signature(function).parameters if name not in skip)


# name -> (constructor, keyword arguments to vary one at a time). build_router's primary is
# fixed by the wrapper; langfuse=True would configure a Langfuse client from the environment.
CONSTRUCTORS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "build_router": (_build_router, _arguments(build_router, "primary", "langfuse")),
    "ContextGuard": (ContextGuard, _arguments(ContextGuard)),
    "RateScheduler": (RateScheduler, _arguments(RateScheduler)),
    "CostTracker": (CostTracker, _arguments(CostTracker)),
    "Budget": (_budget, _arguments(Budget)),
}


def odd_values() -> st.SearchStrategy[Any]:
    """Values a typo, a bad environment variable or a unit mix-up would produce."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.sampled_from([0, -1, 1, 2**63, -(2**63)]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-300, 1e300]),
        st.sampled_from(
            [
                "",
                "1",
                "-1",
                "nan",
                "inf",
                "tier1",
                "tier9",
                "memory",
                "redis//x",
                "rolling",
                "calendar",
                "day",
                "week",
                "openai:gpt-4o-mini",
                "openai:gpt-9000",
                "response",
            ]
        ),
        st.text(max_size=6),
        st.binary(max_size=4),
        st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=4)), max_size=3),
        st.sampled_from(
            [
                {},
                {"openai": "tier9"},
                {"nobody": "tier1"},
                {"openai": 1},
                {"openai:gpt-4o-mini": {"rpm": -1}},
                {"openai:gpt-4o-mini": {"rpm": math.nan}},
                {"openai:gpt-4o-mini": {"rmp": 5}},
                {"openai:gpt-4o-mini": 5},
                {"day": -1},
                {"week": 1},
                {"day": math.nan},
                {1: 2},
            ]
        ),
        st.just(object()),
    )


def must_refuse(argument: str, value: Any) -> bool:
    """Whether accepting ``value`` silently would be a defect (not just a choice)."""
    if argument not in NUMERIC:
        return False
    if isinstance(value, bool | str | bytes | list | dict | set):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, int | float) and value < 0


@dataclass
class ConfigOutcome:
    """What one constructor call with one odd value did."""

    target: str
    argument: str
    value: str
    label: str
    message: str = ""
    problems: list[str] = field(default_factory=list)


def check_config_value(target: str, argument: str, value: Any) -> ConfigOutcome:
    """Build ``target`` with ``argument=value``: a result, or an error that names it."""
    build, _ = CONSTRUCTORS[target]
    outcome = ConfigOutcome(target, argument, summarise(value), "accepted")
    try:
        with _quiet():
            build(**{argument: value})
    except Exception as exc:
        outcome.label = error_label(exc)
        outcome.message = str(exc)[:300]
        if not isinstance(exc, REFUSALS) or outcome.label.startswith("undocumented"):
            outcome.problems.append(f"{type(exc).__name__}, not TypeError/ValueError")
        outcome.problems += message_problems(exc, (argument,))
        return outcome
    if must_refuse(argument, value):
        outcome.problems.append(f"accepted {argument}={summarise(value)} silently")
    return outcome


@contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- config files

_P = {"primary": "openai:gpt-4o-mini"}
_INIT = {"api_key": "unused", "base_url": "http://127.0.0.1:9/v1"}


@dataclass(frozen=True)
class Mistake:
    """One config-file mistake: the tree (or TOML text), the error and the key it must name."""

    name: str
    source: Mapping[str, Any] | str
    error: type[BaseException]
    key: str
    hint: str = ""


CONFIG_MISTAKES: tuple[Mistake, ...] = (
    Mistake("unknown top-level key", {"router": _P, "routr": {}}, ValueError, "routr", "router"),
    Mistake("unknown router key", {"router": {**_P, "colour": 1}}, ValueError, "router.colour"),
    Mistake(
        "misspelt router key",
        {"router": {**_P, "max_wiat": 5}},
        ValueError,
        "router.max_wiat",
        "did you mean 'max_wait'",
    ),
    Mistake(
        "misspelt guard key",
        {"router": _P, "guard": {"safty": 0.5}},
        ValueError,
        "guard.safty",
        "did you mean 'safety'",
    ),
    Mistake(
        "misspelt fallbacks",
        {"router": {**_P, "fallback": []}},
        ValueError,
        "router.fallback",
        "did you mean 'fallbacks'",
    ),
    Mistake(
        "max_wait as a string", {"router": {**_P, "max_wait": "90"}}, TypeError, "router.max_wait"
    ),
    Mistake("max_wait negative", {"router": {**_P, "max_wait": -1}}, ValueError, "router.max_wait"),
    Mistake(
        "max_wait NaN", {"router": {**_P, "max_wait": math.nan}}, ValueError, "router.max_wait"
    ),
    Mistake(
        "max_wait infinite", {"router": {**_P, "max_wait": math.inf}}, ValueError, "router.max_wait"
    ),
    Mistake("max_wait a bool", {"router": {**_P, "max_wait": True}}, TypeError, "router.max_wait"),
    Mistake(
        "budget negative", {"router": {**_P, "budget_usd": -5}}, ValueError, "router.budget_usd"
    ),
    Mistake(
        "budget NaN", {"router": {**_P, "budget_usd": math.nan}}, ValueError, "router.budget_usd"
    ),
    Mistake(
        "budget a string", {"router": {**_P, "budget_usd": "$5"}}, TypeError, "router.budget_usd"
    ),
    Mistake(
        "unknown tier",
        {"router": {**_P, "tier": "tier9"}},
        ValueError,
        "router.tier",
        "known tiers",
    ),
    Mistake(
        "misspelt tier",
        {"router": {**_P, "tier": "teir1"}},
        ValueError,
        "router.tier",
        "did you mean 'tier1'",
    ),
    Mistake("tier a number", {"router": {**_P, "tier": 1}}, TypeError, "router.tier"),
    Mistake(
        "tier table: provider not in router",
        {"router": {**_P, "tier": {"anthropic": "tier1"}}},
        ValueError,
        "router.tier.anthropic",
    ),
    Mistake(
        "tier table: unknown tier",
        {"router": {**_P, "tier": {"openai": "gold"}}},
        ValueError,
        "router.tier.openai",
    ),
    Mistake(
        "unknown primary model",
        {"router": {"primary": "openai:gpt-9000"}},
        UnknownModelError,
        "router.primary",
    ),
    Mistake(
        "unknown fallback model",
        {"router": {**_P, "fallbacks": ["openai:gpt-9000"]}},
        UnknownModelError,
        "router.fallbacks[0]",
    ),
    Mistake(
        "unknown large-context model",
        {"router": {**_P, "large_context": ["openai:gpt-4.1-mini", "openai:gpt-huge"]}},
        UnknownModelError,
        "router.large_context[1]",
    ),
    Mistake("empty primary", {"router": {"primary": ""}}, ValueError, "router.primary"),
    Mistake("blank primary", {"router": {"primary": "   "}}, ValueError, "router.primary"),
    Mistake("missing primary", {"router": {"tier": "tier1"}}, ValueError, "router.primary"),
    Mistake("no [router] table", {"guard": {"safety": 0.9}}, ValueError, "router.primary"),
    Mistake(
        "primary a list",
        {"router": {"primary": ["openai:gpt-4o-mini"]}},
        TypeError,
        "router.primary",
    ),
    Mistake(
        "fallbacks a string",
        {"router": {**_P, "fallbacks": "openai:gpt-4o"}},
        TypeError,
        "router.fallbacks",
    ),
    Mistake(
        "fallback not a name",
        {"router": {**_P, "fallbacks": [5]}},
        TypeError,
        "router.fallbacks[0]",
    ),
    Mistake(
        "duplicate of the primary",
        {"router": {**_P, "fallbacks": ["openai:gpt-4o-mini"]}},
        ValueError,
        "router.fallbacks[0]",
        "already router.primary",
    ),
    Mistake(
        "duplicate in another spelling",
        {"router": {**_P, "large_context": ["openai/gpt-4o-mini"]}},
        ValueError,
        "router.large_context[0]",
        "already router.primary",
    ),
    Mistake(
        "duplicate fallbacks",
        {"router": {**_P, "fallbacks": ["openai:gpt-4o", "openai:gpt-4o"]}},
        ValueError,
        "router.fallbacks[1]",
    ),
    Mistake(
        "backend missing '://'",
        {"router": {**_P, "backend": "redis//localhost"}},
        ValueError,
        "router.backend",
    ),
    Mistake(
        "backend unknown scheme",
        {"router": {**_P, "backend": "postgres://db"}},
        ValueError,
        "router.backend",
    ),
    Mistake(
        "backend without a host",
        {"router": {**_P, "backend": "redis://"}},
        ValueError,
        "router.backend",
    ),
    Mistake(
        "backend with a bad port",
        {"router": {**_P, "backend": "redis://host:port/0"}},
        ValueError,
        "router.backend",
    ),
    Mistake(
        "backend with a bad database",
        {"router": {**_P, "backend": "redis://host:6379/x"}},
        ValueError,
        "router.backend",
    ),
    Mistake(
        "backend misspelt",
        {"router": {**_P, "backend": "memroy"}},
        ValueError,
        "router.backend",
        "did you mean 'memory'",
    ),
    Mistake("backend a number", {"router": {**_P, "backend": 6379}}, TypeError, "router.backend"),
    Mistake(
        "langfuse a string", {"router": {**_P, "langfuse": "yes"}}, TypeError, "router.langfuse"
    ),
    Mistake(
        "guard.enabled a string",
        {"router": _P, "guard": {"enabled": "no"}},
        TypeError,
        "guard.enabled",
    ),
    Mistake(
        "guard disabled with settings",
        {"router": _P, "guard": {"enabled": False, "safety": 0.5}},
        ValueError,
        "guard.enabled",
    ),
    Mistake(
        "guard.safety above 1", {"router": _P, "guard": {"safety": 1.5}}, ValueError, "guard.safety"
    ),
    Mistake(
        "guard.safety NaN",
        {"router": _P, "guard": {"safety": math.nan}},
        ValueError,
        "guard.safety",
    ),
    Mistake(
        "guard.reserve_output negative",
        {"router": _P, "guard": {"reserve_output": -1}},
        ValueError,
        "guard.reserve_output",
    ),
    Mistake(
        "guard.reserve_output a float",
        {"router": _P, "guard": {"reserve_output": 1.5}},
        TypeError,
        "guard.reserve_output",
    ),
    Mistake(
        "[models] names a model not in the router",
        {"router": _P, "models": {"openai:gpt-4o": {}}},
        ValueError,
        'models."openai:gpt-4o"',
        "did you mean",
    ),
    Mistake(
        "[models] entry not a table",
        {"router": _P, "models": {"openai:gpt-4o-mini": 5}},
        TypeError,
        'models."openai:gpt-4o-mini"',
    ),
    Mistake("[defaults] not a table", {"router": _P, "defaults": 5}, TypeError, "defaults"),
    Mistake("[router] not a table", {"router": "openai:gpt-4o-mini"}, TypeError, "router"),
    Mistake("[simulate] not a table", {"router": _P, "simulate": 5}, TypeError, "simulate"),
    Mistake(
        "TOML syntax error",
        '[router]\nprimary = "openai:gpt-4o-mini"\nmax_wait = = 5\n',
        ValueError,
        "line 3",
    ),
    Mistake(
        "TOML unknown key",
        '[router]\nprimary = "openai:gpt-4o-mini"\nmax_wiat = 5\n',
        ValueError,
        "router.max_wiat",
        "did you mean 'max_wait'",
    ),
    Mistake(
        "TOML NaN",
        '[router]\nprimary = "openai:gpt-4o-mini"\nmax_wait = nan\n',
        ValueError,
        "router.max_wait",
    ),
    Mistake(
        "TOML negative budget",
        '[router]\nprimary = "openai:gpt-4o-mini"\nbudget_usd = -1\n',
        ValueError,
        "router.budget_usd",
    ),
    Mistake(
        "TOML unknown model in [models]",
        '[router]\nprimary = "openai:gpt-4o-mini"\n[models."openai:gpt-4o"]\ntemperature = 0\n',
        ValueError,
        'models."openai:gpt-4o"',
    ),
    Mistake(
        "TOML duplicate key",
        '[router]\nprimary = "openai:gpt-4o-mini"\nprimary = "x"\n',
        ValueError,
        "line 3",
    ),
)
MISSING_FILE = "missing file"


@dataclass
class MistakeOutcome:
    """What ``from_config`` said about one mistake."""

    name: str
    key: str
    label: str
    message: str
    problems: list[str] = field(default_factory=list)


def check_mistake(mistake: Mistake, directory: str) -> MistakeOutcome:
    """Load one mistaken config (TOML text is written to ``directory``) and judge the error."""
    source: Any = mistake.source
    label = "the config mapping"
    if isinstance(source, str):
        import pathlib

        path = pathlib.Path(directory) / f"{mistake.name.replace(' ', '_')}.toml"
        path.write_text(source, encoding="utf-8")
        source = label = str(path)
    outcome = MistakeOutcome(mistake.name, mistake.key, "accepted", "")
    try:
        with _quiet():
            from_config(source, init_kwargs=_INIT)
    except Exception as exc:
        outcome.label = error_label(exc)
        outcome.message = str(exc)
        if not isinstance(exc, mistake.error):
            outcome.problems.append(f"{type(exc).__name__}, expected {mistake.error.__name__}")
        for word in (mistake.key, mistake.hint, label):
            if word and word not in outcome.message:
                outcome.problems.append(f"message does not say {word!r}")
        return outcome
    outcome.problems.append("accepted")
    return outcome


def check_missing_file(directory: str) -> MistakeOutcome:
    """A config path that does not exist: ``FileNotFoundError`` naming the path."""
    import pathlib

    path = str(pathlib.Path(directory) / "no-such-router.toml")
    outcome = MistakeOutcome(MISSING_FILE, path, "accepted", "")
    try:
        from_config(path)
    except FileNotFoundError as exc:
        outcome.label, outcome.message = "FileNotFoundError", str(exc)
        if path not in outcome.message:
            outcome.problems.append("message does not name the path")
        return outcome
    except Exception as exc:
        outcome.label, outcome.message = error_label(exc), str(exc)
        outcome.problems.append(f"{type(exc).__name__}, expected FileNotFoundError")
        return outcome
    outcome.problems.append("accepted")
    return outcome


# --------------------------------------------------------------------------- the report


def _fuzz_inputs(harness: Harness, examples: int) -> list[Outcome]:
    found: list[Outcome] = []

    @fuzz_settings(examples)
    @given(entry=st.sampled_from(ENTRY_POINTS), value=inputs())
    def one(entry: str, value: Any) -> None:
        found.append(check_input(harness, entry, value))

    one()
    return found


def _fuzz_config(examples: int) -> list[ConfigOutcome]:
    found: list[ConfigOutcome] = []
    pairs = [(t, a) for t, (_, args) in CONSTRUCTORS.items() for a in args]

    @fuzz_settings(examples)
    @given(pair=st.sampled_from(pairs), value=odd_values())
    def one(pair: tuple[str, str], value: Any) -> None:
        found.append(check_config_value(pair[0], pair[1], value))

    one()
    return found


def run(quick: bool = False) -> dict[str, Any]:
    """Fuzz inputs and constructor values, load every config mistake; JSON-ready figures."""
    import tempfile

    started = time.perf_counter()
    with Harness() as harness:
        outcomes = _fuzz_inputs(harness, 60 if quick else 1000)
    configs = _fuzz_config(100 if quick else 1000)
    with tempfile.TemporaryDirectory() as directory:
        mistakes = [check_mistake(m, directory) for m in CONFIG_MISTAKES]
        mistakes.append(check_missing_file(directory))
    by_entry: dict[str, Counter[str]] = {e: Counter() for e in ENTRY_POINTS}
    for outcome in outcomes:
        by_entry[outcome.entry][outcome.label] += 1
    return {
        "inputs": {
            "examples": len(outcomes),
            "by_outcome": dict(Counter(o.label for o in outcomes).most_common()),
            "by_entry": {e: dict(c.most_common()) for e, c in by_entry.items()},
            "sent_requests": sum(o.sent for o in outcomes),
            "slowest_s": round(max((o.seconds for o in outcomes), default=0.0), 3),
            "liveness_bound_s": LIVENESS_S,
            "violations": [{**vars(o), "message": o.message[:300]} for o in outcomes if not o.ok][
                :20
            ],
            "violation_count": sum(not o.ok for o in outcomes),
        },
        "config_values": {
            "examples": len(configs),
            "by_outcome": dict(Counter(c.label for c in configs).most_common()),
            "violations": [vars(c) for c in configs if c.problems][:20],
            "violation_count": sum(bool(c.problems) for c in configs),
        },
        "config_files": {
            "mistakes": len(mistakes),
            "named_the_key": sum(not m.problems for m in mistakes),
            "violations": [vars(m) for m in mistakes if m.problems],
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def render(result: Mapping[str, Any]) -> str:
    """The figures as a markdown table for the terminal and the README."""
    inputs_ = result["inputs"]
    labels = sorted({label for c in inputs_["by_entry"].values() for label in c})
    lines = [
        f"Bad input: {inputs_['examples']} generated inputs across "
        f"{', '.join(ENTRY_POINTS)} ({inputs_['sent_requests']} reached the provider; "
        f"slowest {inputs_['slowest_s']} s, liveness bound {inputs_['liveness_bound_s']} s)",
        "",
        "| outcome | " + " | ".join(ENTRY_POINTS) + " | total |",
        "|---|" + "---:|" * (len(ENTRY_POINTS) + 1),
    ]
    for label in labels:
        counts = [inputs_["by_entry"][e].get(label, 0) for e in ENTRY_POINTS]
        lines.append(f"| {label} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    undocumented = sum(n for label, n in inputs_["by_outcome"].items() if "undocumented" in label)
    lines += [
        "",
        f"undocumented errors: {undocumented}; rule violations (message, requests or counters "
        f"moved by a refused input, hangs): {inputs_['violation_count']}",
        "",
        f"Odd constructor values: {result['config_values']['examples']} examples over "
        f"{len(CONSTRUCTORS)} constructors: "
        + ", ".join(f"{k} {v}" for k, v in result["config_values"]["by_outcome"].items())
        + f"; violations: {result['config_values']['violation_count']}",
        f"Config-file mistakes: {result['config_files']['named_the_key']} of "
        f"{result['config_files']['mistakes']} errors name the dotted key (or the file/line)",
    ]
    for violation in inputs_["violations"][:5]:
        lines.append(f"  ! {violation['entry']} {violation['value']}: {violation['problems']}")
    for violation in result["config_values"]["violations"][:5]:
        lines.append(
            f"  ! {violation['target']}({violation['argument']}={violation['value']}): "
            f"{violation['problems']}"
        )
    for violation in result["config_files"]["violations"]:
        lines.append(f"  ! config {violation['name']}: {violation['problems']}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(render(run(quick="--quick" in sys.argv)))
