"""Run the simulator in a background thread: ``with SimulatedProvider(models=[...]) as sim``.

Owns the uvicorn lifecycle (bind a free port first, serve in a daemon thread, stop without
hanging even while requests are held open) and the public control surface (faults, reset,
stats). Request handling is ``sim.app``; decisions and counters are ``sim.state``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any

from llm_routing.sim.app import ShutdownSignal, create_app
from llm_routing.sim.faults import FaultPlan
from llm_routing.sim.model import SimModel
from llm_routing.sim.state import SimState

__all__ = ["SimulatedProvider", "default_models"]

_START_TIMEOUT = 10.0


def default_models() -> list[SimModel]:
    """Three small models with different windows and limits (the demo's and the CLI's default)."""
    from llm_routing.catalog.spec import Price

    return [
        SimModel(
            name="sim-mini",
            context_window=16_000,
            max_output_tokens=4_096,
            rpm=60,
            tpm=40_000,
            rpd=10_000,
            price=Price(Decimal("0.15"), Decimal("0.60")),
        ),
        SimModel(
            name="sim-standard",
            context_window=128_000,
            max_output_tokens=16_384,
            rpm=20,
            tpm=60_000,
            rpd=2_000,
            price=Price(Decimal("2.50"), Decimal("10.00")),
        ),
        SimModel(
            name="sim-long",
            context_window=1_000_000,
            max_output_tokens=32_768,
            rpm=5,
            tpm=2_000_000,
            rpd=500,
            price=Price(Decimal("1.25"), Decimal("5.00")),
        ),
    ]


class SimulatedProvider:
    """An OpenAI-compatible server on 127.0.0.1 and a free port, in a background thread.

    ``base_url`` (ends in ``/v1``) goes to ``ChatOpenAI(base_url=..., api_key="sim")``.
    ``seed`` makes faults, latency jitter and answers reproducible; ``clock`` drives the rate
    windows (``time.monotonic`` by default). The server answers only while started: use it as
    a context manager or call ``start()``/``stop()``.
    """

    def __init__(
        self,
        models: Iterable[SimModel] | None = None,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = SimState(
            default_models() if models is None else models, seed=seed, clock=clock
        )
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535 (0 picks a free port), got {port!r}")
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._signal: ShutdownSignal | None = None
        self._bound_port: int | None = None
        self._error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> SimulatedProvider:
        """Bind, start serving in a daemon thread, and return once requests are answered."""
        if self._thread is not None:
            raise RuntimeError("this SimulatedProvider is already running; call stop() first")
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
            sock.listen(4096)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._bound_port = sock.getsockname()[1]
        self._signal = ShutdownSignal()
        config = uvicorn.Config(
            create_app(self.state, self._signal),
            lifespan="on",
            http="h11",
            loop="asyncio",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._error = None

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start() or stop(), never swallowed
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(
            target=run, name=f"llm-routing-sim:{self._bound_port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread.join(timeout=1)
                self._thread = None
                raise RuntimeError(
                    f"the simulated provider did not start on {self._host}:{self._bound_port}"
                ) from self._error
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; held-open (timed-out) requests are closed, never waited for."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        if self._signal is not None:
            self._signal.trigger()
        server.should_exit = True
        thread.join(timeout=timeout / 2)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=timeout / 2)
        self._thread = None
        self._server = None
        if thread.is_alive():
            raise RuntimeError(f"the simulated provider did not stop within {timeout} s")

    def __enter__(self) -> SimulatedProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._bound_port is None:
            raise RuntimeError("the simulated provider has no port yet; call start() first")
        return self._bound_port

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``) to give an OpenAI client."""
        return f"{self.url}/v1"

    # -- control -------------------------------------------------------------------------

    @property
    def models(self) -> tuple[SimModel, ...]:
        """The simulated models."""
        return self.state.models

    def set_faults(self, model: str, faults: FaultPlan | Mapping[int, str | int] | None) -> None:
        """Change a model's faults at runtime: ``sim.set_faults("m", FaultPlan.at({1: 503}))``."""
        self.state.set_faults(model, faults)

    def reset(self) -> None:
        """Empty every window, quota and counter and restore the construction-time faults."""
        self.state.reset()

    def stats(self) -> dict[str, Any]:
        """Counters and per-model timelines (the same document as ``GET /sim/stats``)."""
        return self.state.stats()

    def __repr__(self) -> str:
        where = self.base_url if self._bound_port is not None else "not started"
        names = ", ".join(m.name for m in self.models)
        return f"SimulatedProvider({where}; models: {names})"
