"""Secrets scan: fake secrets driven through every router path, then every output grepped.

Owns the scan (fake secrets, the paths driven, the sinks collected, the search); the report and
the tests both call `run`. It fixes nothing: a hit names the sink and the place it was found.
The secrets are an API key (given to every ``ChatOpenAI``), a Redis password (in the backend's
URL) and a Langfuse secret key. Each is searched whole, by its last four characters (how
providers mask keys) and base64-encoded at every byte alignment (how HTTP Basic auth and
pickles of bytes would carry it). A recognisable prompt is also sent and must not appear in
any log record at INFO or above.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import pickle
import random
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "SINKS",
    "FakeSecrets",
    "Scan",
    "needles",
    "render",
    "run",
]

# Sinks every run fills (Redis and Langfuse ones only when those parts are not skipped).
SINKS: tuple[str, ...] = (
    "logs: llm_routing.* at DEBUG",
    "logs: every logger at INFO+",
    "warnings",
    "router.stats()",
    "scheduler.stats()/snapshot()",
    "tracker summary/records/rows/html",
    "repr()/str() of objects",
    "response metadata",
    "exceptions (str, repr, notes, attempts, traceback)",
    "pickled exceptions (ours)",
    "pickled exceptions (SDK's, passed on)",
    "langfuse spans (every attribute)",
    "redis keys and values",
    "redis ledger",
    "cli: llm-routing demo --live --json",
)
# SDK errors the router passes on as they are (a 401, a stream cut after its first chunk)
# hold the HTTP request, whose headers carried the key: the decorators scrub it
# (llm_routing.errors.scrub_credentials), so their pickled form must be clean too.
THIRD_PARTY_PICKLES = "pickled exceptions (SDK's, passed on)"
REDIS_SINKS = frozenset({"redis keys and values", "redis ledger"})
LANGFUSE_SINKS = frozenset({"langfuse spans (every attribute)"})

# Non-hex capitals: a four-character tail drawn from them cannot occur by chance in the hex
# ids (trace ids, request ids, hashes) the sinks are full of.
_TAIL_ALPHABET = "GHJKMNPQRSTVWXYZ"
_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
_SIM_WINDOW = 2_000  # the simulator's real context window for every model
_CLAIMED_WINDOW = 1_000  # what the clients tell the guard (the guard refuses above it)
_TIMEOUT_S = 0.25  # the clients' HTTP timeout: the "timeout" fault waits this long per try
_FAULTS = ("429", "quota", "500", "502", "503", "529", "timeout", "reset", "malformed")


def _fake(label: str, rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789abcdef") for _ in range(24))
    tail = "".join(rng.choice(_TAIL_ALPHABET) for _ in range(4))
    return f"sk-llmr-{label}-{body}{tail}"


@dataclass(frozen=True, slots=True)
class FakeSecrets:
    """The secrets a run hands out, and the prompt marker that must stay out of INFO logs."""

    api_key: str
    redis_password: str
    langfuse_secret: str
    prompt_marker: str

    @classmethod
    def new(cls, seed: int | None = None) -> FakeSecrets:
        """Fresh secrets (``seed`` for reproducible ones)."""
        rng = random.Random(seed if seed is not None else os.urandom(16))
        return cls(
            api_key=_fake("FAKEKEY", rng),
            redis_password=_fake("REDISPW", rng),
            langfuse_secret=_fake("LFSECRET", rng),
            prompt_marker="llmr-PROMPT-" + "".join(rng.choice(_TAIL_ALPHABET) for _ in range(12)),
        )

    def secrets(self) -> dict[str, str]:
        """Name -> secret value, for everything that must never be shown."""
        return {
            "api_key": self.api_key,
            "redis_password": self.redis_password,
            "langfuse_secret": self.langfuse_secret,
        }


def _base64_forms(secret: str) -> list[str]:
    """Substrings every base64 encoding of a text containing ``secret`` must contain.

    Base64 maps 3 bytes to 4 characters, so the encoding of ``secret`` inside a longer text
    depends on its offset modulo 3; for each offset, the characters fully determined by the
    secret's own bytes are the same whatever surrounds it. Standard and URL-safe alphabets.
    """
    raw = secret.encode()
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = -(-8 * offset // 6)  # first character made of the secret's bits only
        end = 8 * (offset + len(raw)) // 6  # last one not touching what follows
        inner = encoded[start:end]
        forms.add(inner)
        forms.add(inner.replace("+", "-").replace("/", "_"))
    return sorted(form for form in forms if len(form) >= 16)


def needles(fake: FakeSecrets) -> list[tuple[str, str, str]]:
    """``(secret name, form, text)`` for every form a secret could take in an output."""
    found: list[tuple[str, str, str]] = []
    for name, secret in fake.secrets().items():
        found.append((name, "whole", secret))
        found.append((name, "last 4", secret[-4:]))
        found += [(name, "base64", form) for form in _base64_forms(secret)]
    return found


# --------------------------------------------------------------------------- collecting


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    try:
        return json.dumps(value, default=repr, sort_keys=True) + "\n" + repr(value)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class Scan:
    """Everything the paths produced, by sink, and a search over it."""

    items: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    unpicklable: list[str] = field(default_factory=list)

    def add(self, sink: str, where: str, value: Any) -> None:
        """Keep ``value`` (as text) under ``sink``, labelled ``where``."""
        self.items.setdefault(sink, []).append((where, _text(value)))

    def exception(self, where: str, exc: BaseException) -> None:
        """Every way a user sees an exception: message, repr, notes, chain, attempts, pickle."""
        from llm_routing.errors import LLMRoutingError

        ours = isinstance(exc, LLMRoutingError)
        pickles = "pickled exceptions (ours)" if ours else THIRD_PARTY_PICKLES
        sink = "exceptions (str, repr, notes, attempts, traceback)"
        self.add(sink, f"{where}: traceback", "".join(traceback.format_exception(exc)))
        seen: set[int] = set()
        stack: list[tuple[str, BaseException]] = [(where, exc)]
        while stack:
            label, error = stack.pop()
            if id(error) in seen:
                continue
            seen.add(id(error))
            self.add(sink, f"{label}: str", str(error))
            self.add(sink, f"{label}: repr", repr(error))
            self.add(sink, f"{label}: args", repr(error.args))
            self.add(sink, f"{label}: notes", list(getattr(error, "__notes__", [])))
            self.add(sink, f"{label}: attributes", {k: repr(v) for k, v in vars(error).items()})
            attempts = getattr(error, "attempts", None)  # AllModelsFailedError's list
            for attempt in attempts if isinstance(attempts, list) else []:
                inner = getattr(attempt, "error", None)
                if isinstance(inner, BaseException):
                    stack.append((f"{label} -> attempt {attempt.model}", inner))
            for link in ("__cause__", "__context__"):
                inner = getattr(error, link)
                if isinstance(inner, BaseException):
                    stack.append((f"{label} -> {link}", inner))
        try:
            blob = pickle.dumps(exc)
        except Exception as failure:
            self.unpicklable.append(f"{where}: {type(exc).__name__} ({type(failure).__name__})")
            return
        self.add(pickles, where, blob)
        try:
            copy = pickle.loads(blob)  # our own bytes, just written
        except Exception as failure:
            self.unpicklable.append(
                f"{where}: {type(exc).__name__} does not unpickle ({type(failure).__name__})"
            )
        else:
            self.add(pickles, f"{where}: unpickled", f"{copy!s} {copy!r}")

    def search(self, patterns: list[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
        """Per sink: items scanned, hits, and where the first hits were."""
        report: dict[str, dict[str, Any]] = {}
        for sink, entries in self.items.items():
            hits = [
                f"{where}: {name} ({form})"
                for where, text in entries
                for name, form, needle in patterns
                if needle in text
            ]
            report[sink] = {"items": len(entries), "hits": len(hits), "examples": hits[:5]}
        return report


class _Records(logging.Handler):
    """Every log record of every logger while installed on the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._format = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self, record: logging.LogRecord) -> str:
        """The line a handler would write, traceback and stack included."""
        try:
            return self._format.format(record)
        except Exception:
            return f"{record.name} {record.levelname} {record.msg!r} {record.args!r}"


@contextlib.contextmanager
def _capture_logs() -> Iterator[_Records]:
    """Every record at DEBUG from every logger; levels restored afterwards."""
    handler = _Records()
    root = logging.getLogger()
    touched = [
        root,
        *(logging.getLogger(n) for n in ("llm_routing", "openai", "httpx", "httpcore")),
    ]
    levels = [logger.level for logger in touched]
    root.addHandler(handler)
    for logger in touched:
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in zip(touched, levels, strict=True):
            logger.setLevel(level)


# --------------------------------------------------------------------------- servers


class _Unauthorized(BaseHTTPRequestHandler):
    """OpenAI's 401 for a wrong key (the simulator never checks keys, so this stands in)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "error": {
                    "message": "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _auth_stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, name="secrets-401", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _private_redis(password: str) -> Iterator[Any]:
    """A password-protected redis-server of our own, or the reason there is none."""
    try:
        import redis  # noqa: F401 (the backends need it)
    except ImportError:
        yield "the redis package is not installed (pip install 'llm-routing[redis]')"
        return
    from tests.support.redis import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        yield "redis-server is not installed (apt-get install redis-server)"
        return
    with tempfile.TemporaryDirectory(prefix="llmr-secrets-redis-") as directory:
        try:
            server = RedisServer(binary, Path(directory), password=password).start()
        except RuntimeError:
            yield "redis-server did not start"
            return
        try:
            yield server
        finally:
            server.stop()


# --------------------------------------------------------------------------- paths


@dataclass
class _Context:
    sim: Any
    fake: FakeSecrets
    scan: Scan
    loop: asyncio.AbstractEventLoop
    auth_url: str
    redis: Any = None  # tests.support.redis.RedisServer, password-protected
    langfuse: Any = None
    serial: int = 0

    def prompt(self, extra: str = "") -> str:
        return f"Tell me one fact about otters. {self.fake.prompt_marker} {extra}".strip()

    def client(
        self, name: str, *, base_url: str | None = None, window: int = _CLAIMED_WINDOW
    ) -> Any:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=name,
            base_url=base_url or self.sim.base_url,
            api_key=self.fake.api_key,  # type: ignore[arg-type]
            max_retries=0,
            timeout=_TIMEOUT_S,
            stream_usage=True,
            profile={"max_input_tokens": window},
        )

    def router(
        self,
        *,
        base_url: str | None = None,
        window: int = _CLAIMED_WINDOW,
        budget_usd: float | None = None,
        warn_at: float = 0.8,
        langfuse: bool = False,
        on_unavailable: str = "fail",
    ) -> Any:
        """A fresh three-model router (fresh scheduler: cooldowns of one path stay there)."""
        from llm_routing import CostTracker, RateScheduler, build_router

        self.serial += 1
        backend: Any = "memory"
        ledger: Any = None
        if self.redis is not None:
            from llm_routing.cost.redis_ledger import RedisLedger
            from llm_routing.schedule.redis import RedisBackend

            backend = RedisBackend(
                self.redis.url,
                prefix=f"llmr{self.serial}",
                on_unavailable=on_unavailable,  # type: ignore[arg-type]
            )
            ledger = RedisLedger(self.redis.url, prefix=f"llmr{self.serial}")
        scheduler = RateScheduler(
            max_wait=0.5,
            backend=backend,
            max_retries=1,
            backoff_initial=0.05,
            backoff_max=0.1,
            per_api_key=True,
        )
        tracker = CostTracker(budget_usd=budget_usd, warn_at=warn_at, backend=ledger)
        models = [self.client(name, base_url=base_url, window=window) for name in _MODELS]
        return build_router(
            models[0],
            models[1:],
            scheduler=scheduler,
            tracker=tracker,
            langfuse=self.langfuse if langfuse else False,
        )

    def faults(self, plan: Any, models: tuple[str, ...] = _MODELS) -> None:
        self.sim.reset()
        for name in models:
            self.sim.set_faults(name, plan)

    def collect(self, where: str, router: Any) -> None:
        """Every sink a router and its decorators offer."""
        scan = self.scan
        scan.add("router.stats()", where, router.stats())
        scan.add("repr()/str() of objects", f"{where}: router", f"{router!r} {router}")
        for model in router.models:
            scan.add("repr()/str() of objects", f"{where}: model", f"{model!r} {model}")
        scheduler = router.settings["scheduler"]
        tracker = router.settings["tracker"]
        scan.add("scheduler.stats()/snapshot()", f"{where}: stats", scheduler.stats())
        for name in router.names:
            scan.add("scheduler.stats()/snapshot()", f"{where}: {name}", scheduler.snapshot(name))
        for model in router.models:
            scan.add(
                "scheduler.stats()/snapshot()", f"{where}: model", scheduler.snapshot(model.bound)
            )
        for obj in (
            scheduler,
            tracker,
            router.settings["guard"],
            scheduler.backend,
            tracker.ledger,
        ):
            scan.add("repr()/str() of objects", f"{where}: {type(obj).__name__}", f"{obj!r} {obj}")
        sink = "redis ledger" if type(tracker.ledger).__name__ == "RedisLedger" else None
        for target in filter(None, ("tracker summary/records/rows/html", sink)):
            scan.add(target, f"{where}: summary", tracker.summary())
            scan.add(target, f"{where}: exact summary", tracker.summary(exact=True))
            scan.add(target, f"{where}: records", [repr(r) for r in tracker.records()])
            scan.add(target, f"{where}: rows", [r.as_row() for r in tracker.records()])
            scan.add(target, f"{where}: html", tracker._repr_html_())
        with contextlib.suppress(ImportError):
            scan.add(
                "tracker summary/records/rows/html",
                f"{where}: dataframe",
                tracker.to_dataframe().to_csv(),
            )

    def attempt(self, name: str, variant: str, action: Callable[[], Any]) -> str:
        """Run one path; keep its output or exception; return the outcome."""
        where = f"{variant}/{name}"
        started = time.perf_counter()
        try:
            output = action()
        except Exception as exc:
            self.scan.exception(where, exc)
            outcome = type(exc).__name__
        else:
            outputs = output if isinstance(output, list) else [output]
            served = []
            for message in outputs:
                metadata = getattr(message, "response_metadata", {})
                self.scan.add("response metadata", where, metadata)
                self.scan.add(
                    "response metadata",
                    f"{where}: kwargs",
                    getattr(message, "additional_kwargs", {}),
                )
                served.append(str(metadata.get("llm_routing.model", "?")))
            outcome = "served by " + ", ".join(served)
        self.scan.outcomes.append(
            {
                "path": name,
                "variant": variant,
                "outcome": outcome,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        return outcome

    def run_async(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


def _gather_stream(router: Any, text: str) -> Any:
    total = None
    for chunk in router.stream(text):
        total = chunk if total is None else total + chunk
    return total


async def _agather_stream(router: Any, text: str) -> Any:
    total = None
    async for chunk in router.astream(text):
        total = chunk if total is None else total + chunk
    return total


def _drive(ctx: _Context, variant: str, *, full: bool) -> None:
    """Success, fallback, every failure kind, refusals, auth and streams through fresh routers."""
    from llm_routing.sim import FaultPlan

    def path(name: str, action: Callable[[Any], Any], **router_kwargs: Any) -> None:
        router = ctx.router(**router_kwargs)
        ctx.attempt(name, variant, lambda: action(router))
        ctx.collect(f"{variant}/{name}", router)

    ctx.faults(None)
    path("invoke", lambda r: r.invoke(ctx.prompt()))
    path("ainvoke", lambda r: ctx.run_async(r.ainvoke(ctx.prompt())))
    path("batch", lambda r: r.batch([ctx.prompt("one"), ctx.prompt("two")]))
    path("stream", lambda r: _gather_stream(r, ctx.prompt()))
    path("astream", lambda r: ctx.run_async(_agather_stream(r, ctx.prompt())))
    ctx.faults(FaultPlan.always("503"), _MODELS[:1])
    path("fallback after 503", lambda r: r.invoke(ctx.prompt()))
    ctx.faults(FaultPlan.always("503"), _MODELS[:1])
    path("stream fallback after 503", lambda r: _gather_stream(r, ctx.prompt()))
    ctx.faults(FaultPlan.always("drop", drop_after=2), _MODELS[:1])
    path("stream dropped after 2 chunks", lambda r: _gather_stream(r, ctx.prompt()))
    kinds = _FAULTS if full or variant == "memory" else ("429", "quota", "503", "timeout")
    for kind in kinds:
        plan = FaultPlan.always(kind, hang=2.0, retry_after=30.0 if kind == "429" else None)
        ctx.faults(plan)
        path(f"all models {kind}", lambda r: r.invoke(ctx.prompt()))
        if full and kind in ("429", "503"):
            ctx.faults(plan)
            path(
                f"all models {kind} (astream)",
                lambda r: ctx.run_async(_agather_stream(r, ctx.prompt())),
            )
    ctx.faults(FaultPlan.always("429"))
    path("all models 429 without retry-after", lambda r: r.invoke(ctx.prompt()))
    ctx.faults(None)
    oversize = ctx.prompt("word " * 3_000)  # over the claimed window and the real one
    path("guard refuses (context)", lambda r: r.invoke(oversize))
    path("provider refuses (context)", lambda r: r.invoke(oversize), window=100_000)
    path("budget refuses", lambda r: r.invoke(ctx.prompt()), budget_usd=1e-9)
    path("budget warning", lambda r: r.invoke(ctx.prompt()), budget_usd=1.0, warn_at=1e-9)
    path("auth failure (401)", lambda r: r.invoke(ctx.prompt()), base_url=ctx.auth_url)
    path(
        "auth failure (401, stream)",
        lambda r: _gather_stream(r, ctx.prompt()),
        base_url=ctx.auth_url,
    )
    ctx.faults(None)


def _drive_langfuse(ctx: _Context) -> str | None:
    """Routers exporting to Langfuse (in-memory exporter); every span attribute is kept."""
    try:
        from langfuse import Langfuse
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:
        return f"no Langfuse SDK ({exc.name}): pip install 'llm-routing[langfuse]'"
    from llm_routing.observe import flush, shutdown
    from llm_routing.sim import FaultPlan

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    client = Langfuse(
        public_key="pk-llmr-public",
        secret_key=ctx.fake.langfuse_secret,
        base_url="http://127.0.0.1:9",
        tracer_provider=provider,
        span_exporter=exporter,
    )
    ctx.langfuse = client
    variant = "langfuse"
    try:
        for name, plan, models, action in (
            ("invoke", None, _MODELS, "invoke"),
            ("stream", None, _MODELS, "stream"),
            ("fallback after 503", FaultPlan.always("503"), _MODELS[:1], "invoke"),
            ("all models 429", FaultPlan.always("429", retry_after=30.0), _MODELS, "invoke"),
            ("all models timeout", FaultPlan.always("timeout", hang=2.0), _MODELS, "invoke"),
            ("guard refuses (context)", None, _MODELS, "oversize"),
            ("auth failure (401)", None, _MODELS, "auth"),
        ):
            ctx.faults(plan, models)
            router = ctx.router(langfuse=True, base_url=ctx.auth_url if action == "auth" else None)
            text = ctx.prompt("word " * 3_000) if action == "oversize" else ctx.prompt()
            if action == "stream":
                ctx.attempt(name, variant, partial(_gather_stream, router, text))
            else:
                ctx.attempt(name, variant, partial(router.invoke, text))
            ctx.collect(f"{variant}/{name}", router)
        ctx.faults(None)
        flush(client, timeout_s=10)
        spans = exporter.get_finished_spans()
        for span in spans:
            where = f"span {span.name}"
            ctx.scan.add("langfuse spans (every attribute)", where, span.to_json())
            for key, value in (span.attributes or {}).items():
                ctx.scan.add(
                    "langfuse spans (every attribute)", f"{where}: {key}", f"{key}={_text(value)}"
                )
            resource = dict(span.resource.attributes)
            ctx.scan.add("langfuse spans (every attribute)", f"{where}: resource", resource)
        ctx.scan.add("repr()/str() of objects", "langfuse client", repr(client))
    finally:
        ctx.langfuse = None
        shutdown(client, timeout_s=5)
        provider.shutdown()
    return None


def _scan_redis(ctx: _Context) -> None:
    """Every key, its type, its DUMP and its readable value."""
    import redis

    assert ctx.redis is not None
    client = redis.Redis(port=ctx.redis.port, password=ctx.redis.password, socket_timeout=2)
    sink = "redis keys and values"
    try:
        for key in client.scan_iter(count=500):
            name = _text(key)
            kind = _text(client.type(key))
            ctx.scan.add(sink, f"key {name}", name)
            dumped = client.dump(key)
            if dumped is not None:
                ctx.scan.add(sink, f"{name}: DUMP", dumped)
            readers: dict[str, Callable[[], Any]] = {
                "string": partial(client.get, key),
                "hash": partial(client.hgetall, key),
                "list": partial(client.lrange, key, 0, -1),
                "set": partial(client.smembers, key),
                "zset": partial(client.zrange, key, 0, -1, withscores=True),
                "stream": partial(client.xrange, key),
            }
            reader = readers.get(kind)
            if reader is not None:
                ctx.scan.add(sink, f"{name}: {kind}", reader())
        ctx.scan.add(sink, "CLIENT LIST", client.client_list())
        from llm_routing.cost.redis_ledger import RedisLedger
        from llm_routing.schedule.redis import RedisBackend

        for built in (RedisBackend(client=client), RedisLedger(client=client)):
            ctx.scan.add(
                "repr()/str() of objects", f"{type(built).__name__}(client=…)", repr(built)
            )
    finally:
        client.close()


def _drive_redis_down(ctx: _Context) -> None:
    """Redis dies: what the refusal, the logs and the warnings say (the URL has the password)."""
    assert ctx.redis is not None
    closed = ctx.router()
    open_ = ctx.router(on_unavailable="memory")
    ctx.redis.stop()
    ctx.attempt("redis down (fail closed)", "redis", lambda: closed.invoke(ctx.prompt()))
    ctx.attempt("redis down (fall back to memory)", "redis", lambda: open_.invoke(ctx.prompt()))
    for name, router in (("fail closed", closed), ("memory", open_)):
        ctx.scan.add(
            "repr()/str() of objects",
            f"redis down ({name}): backend",
            repr(router.settings["scheduler"].backend),
        )
        ctx.scan.add(
            "repr()/str() of objects",
            f"redis down ({name}): ledger",
            repr(router.settings["tracker"].ledger),
        )


@contextlib.contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _drive_cli(ctx: _Context) -> None:
    """``llm-routing demo --live --json`` with the key in OPENAI_API_KEY, against the simulator."""
    from llm_routing.cli import main

    out, err = io.StringIO(), io.StringIO()
    env = {
        "OPENAI_API_KEY": ctx.fake.api_key,
        "OPENAI_BASE_URL": ctx.sim.base_url,
        "OPENAI_API_BASE": ctx.sim.base_url,
        "ANTHROPIC_API_KEY": None,
        "GOOGLE_API_KEY": None,
    }
    ctx.faults(None)
    started = time.perf_counter()
    code: object
    with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["demo", "--live", "--json"])
        except SystemExit as exit_:
            code = exit_.code
        except Exception as exc:
            ctx.scan.exception("cli", exc)
            code = type(exc).__name__
    ctx.scan.add("cli: llm-routing demo --live --json", "stdout", out.getvalue())
    ctx.scan.add("cli: llm-routing demo --live --json", "stderr", err.getvalue())
    served = "served" if '"served"' in out.getvalue() else "no JSON"
    ctx.scan.outcomes.append(
        {
            "path": "demo --live --json",
            "variant": "cli",
            "outcome": f"exit {code}, {served}",
            "seconds": round(time.perf_counter() - started, 2),
        }
    )


# --------------------------------------------------------------------------- the run


def _sim_models() -> list[Any]:
    from llm_routing.sim import SimModel

    return [SimModel(name=name, context_window=_SIM_WINDOW) for name in _MODELS]


def _logs(ctx: _Context, records: _Records) -> dict[str, Any]:
    """File the records into their sinks; report what other libraries logged at DEBUG."""
    marker = ctx.fake.prompt_marker
    secrets = list(ctx.fake.secrets().values())
    prompt_at_info = 0
    prompt_in_ours_debug = 0
    foreign: dict[str, dict[str, int]] = {}
    for record in records.records:
        text = records.text(record)
        ours = record.name == "llm_routing" or record.name.startswith("llm_routing.")
        where = f"{record.name} {record.levelname}"
        if ours:
            ctx.scan.add("logs: llm_routing.* at DEBUG", where, text)
            prompt_in_ours_debug += marker in text
        if record.levelno >= logging.INFO:
            ctx.scan.add("logs: every logger at INFO+", where, text)
            prompt_at_info += marker in text
        elif not ours:
            entry = foreign.setdefault(record.name, {"records": 0, "secret": 0, "prompt": 0})
            entry["records"] += 1
            entry["secret"] += any(s in text or s[-4:] in text for s in secrets)
            entry["prompt"] += marker in text
    at_info = len(ctx.scan.items.get("logs: every logger at INFO+", []))
    return {
        "records": len(records.records),
        "prompt": {
            "records_at_info": at_info,
            "prompt_hits_at_info": prompt_at_info,
            "prompt_hits_in_llm_routing_debug": prompt_in_ours_debug,
        },
        "third_party_debug": dict(sorted(foreign.items())),
    }


def run(quick: bool = False, *, seed: int | None = None) -> dict[str, Any]:
    """Drive every path, grep every sink; JSON-serialisable figures.

    ``quick`` drives fewer fault kinds through the Redis variant and no async fault paths;
    every sink is still filled.
    """
    from llm_routing.sim import SimulatedProvider

    started = time.perf_counter()
    fake = FakeSecrets.new(seed)
    scan = Scan()
    skipped: dict[str, str] = {}
    loop = asyncio.new_event_loop()
    with (
        _capture_logs() as records,
        warnings.catch_warnings(record=True) as caught,
        SimulatedProvider(_sim_models(), seed=0) as sim,
        _auth_stub() as auth_url,
    ):
        warnings.simplefilter("always")
        ctx = _Context(sim=sim, fake=fake, scan=scan, loop=loop, auth_url=auth_url)
        try:
            _drive(ctx, "memory", full=not quick)
            reason = _drive_langfuse(ctx)
            if reason is not None:
                skipped["langfuse"] = reason
            with _private_redis(fake.redis_password) as server:
                if isinstance(server, str):
                    skipped["redis"] = server
                else:
                    ctx.redis = server
                    _drive(ctx, "redis", full=not quick)
                    _scan_redis(ctx)
                    _drive_redis_down(ctx)
                    ctx.redis = None
            _drive_cli(ctx)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    for message in caught:
        scan.add(
            "warnings",
            f"{message.category.__name__} {Path(message.filename).name}",
            f"{message.category.__name__}: {message.message}",
        )
    logs = _logs(ctx, records)
    patterns = needles(fake)
    sinks = scan.search(patterns)
    for sink in SINKS:
        sinks.setdefault(sink, {"items": 0, "hits": 0, "examples": []})
    violations = [
        f"{sink}: {entry['hits']} hits ({'; '.join(entry['examples'])})"
        for sink, entry in sinks.items()
        if entry["hits"]
    ]
    if logs["prompt"]["prompt_hits_at_info"]:
        violations.append(f"the prompt is in {logs['prompt']['prompt_hits_at_info']} INFO+ records")
    return {
        "violations": violations,
        "secrets": {name: value[: len(value) - 28] + "…" for name, value in fake.secrets().items()},
        "needles": len(patterns),
        "paths": scan.outcomes,
        "sinks": {sink: sinks[sink] for sink in (*SINKS, *sorted(set(sinks) - set(SINKS)))},
        "total_hits": sum(e["hits"] for e in sinks.values()),
        "unpicklable": scan.unpicklable,
        "skipped": skipped,
        **logs,
        "seconds": round(time.perf_counter() - started, 2),
    }


def render(result: dict[str, Any]) -> str:
    """Per sink: items scanned and hits; then the prompt check, paths and third-party logs."""
    lines = [
        f"Secrets scan: {len(result['paths'])} paths, {result['needles']} needles "
        f"(whole, last 4, base64) for {', '.join(result['secrets'])}; {result['seconds']} s",
        "",
        "| sink | items scanned | hits |",
        "|---|---:|---:|",
    ]
    for sink, entry in result["sinks"].items():
        hits = entry["hits"]
        note = f" ({'; '.join(entry['examples'][:2])})" if hits else ""
        lines.append(f"| {sink} | {entry['items']} | {hits}{note} |")
    prompt = result["prompt"]
    lines += [
        "",
        f"Prompt at INFO+: {prompt['prompt_hits_at_info']} of {prompt['records_at_info']} records "
        f"contain it (llm_routing.* DEBUG: {prompt['prompt_hits_in_llm_routing_debug']}).",
    ]
    if result["unpicklable"]:
        lines.append(f"Unpicklable exceptions: {', '.join(result['unpicklable'])}")
    for part, reason in result["skipped"].items():
        lines.append(f"Skipped {part}: {reason}")
    lines += ["", "Other libraries at DEBUG (not our code; reported, not failed):"]
    for name, entry in result["third_party_debug"].items():
        if entry["secret"] or entry["prompt"]:
            lines.append(
                f"  {name}: {entry['records']} records, {entry['secret']} with a secret, "
                f"{entry['prompt']} with the prompt"
            )
    quiet = [n for n, e in result["third_party_debug"].items() if not (e["secret"] or e["prompt"])]
    if quiet:
        lines.append(f"  clean: {', '.join(quiet)}")
    lines += ["", "Paths driven:"]
    lines += [
        f"  {p['variant']:8} {p['path']:36} {p.get('seconds', 0):5.2f} s -> {p['outcome']}"
        for p in result["paths"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run()))
