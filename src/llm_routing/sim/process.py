"""The simulated provider in a child process of its own, for benchmarks and soak runs.

A provider's CPU is not the client's: measured in one process, the simulator's work (JSON,
token counting, SSE framing) would be billed to the scheduler under test and share its GIL.
The child is spawned, serves until told to stop, and is reached over loopback HTTP like any
provider.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from llm_routing.sim.model import SimModel
from llm_routing.sim.server import SimulatedProvider

__all__ = ["SimProcess"]


def _serve(models: Callable[[], Sequence[SimModel]], seed: int, clock: Any, conn: Any) -> None:
    """The child process: serve ``models()`` until the parent says stop (or goes away)."""
    options: dict[str, Any] = {}
    if clock is not None:  # a clock object (ScaledClock) or a callable returning seconds
        options["clock"] = getattr(clock, "now", clock)
    sim = SimulatedProvider(models(), seed=seed, **options)
    sim.state.warm_up()  # the first request must not pay for loading the encodings
    with sim:
        conn.send(sim.url)
        with contextlib.suppress(EOFError, OSError):
            conn.recv()


class SimProcess:
    """A `SimulatedProvider` serving ``models()`` in a spawned child process.

    For benchmarks: the child's CPU and GIL are not the measured process's. ``clock`` (a
    picklable clock such as ``ScaledClock``, whose ``now()`` reads the system-wide monotonic
    clock, so the child's copy agrees with the parent's) replaces the simulator's time.
    ``models`` is a picklable callable (a module-level function or a ``functools.partial`` of
    one) that builds the `SimModel` list in the child: a ``SimModel`` itself does not pickle
    (its fault plan holds a mappingproxy). ``stats()`` and ``reset()`` go over the simulator's
    HTTP control surface; ``cpu_s()`` reads the child's CPU from ``/proc``.
    """

    def __init__(
        self,
        models: Callable[[], Sequence[SimModel]],
        *,
        seed: int = 0,
        clock: Any = None,
        start_timeout: float = 60.0,
    ) -> None:
        if not callable(models):
            raise TypeError(
                "SimProcess(models=…) must be a picklable callable returning SimModels, "
                f"e.g. functools.partial(sim_models, config); got {type(models).__name__}"
            )
        context = multiprocessing.get_context("spawn")
        self._parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(models, seed, clock, child), daemon=True
        )
        self._start_timeout = start_timeout
        self._url: str | None = None

    def __enter__(self) -> SimProcess:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._parent.send("stop")
        self._process.join(timeout=20)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._parent.close()

    @property
    def url(self) -> str:
        """The server root; waits for the child to report it."""
        if self._url is None:
            if not self._parent.poll(self._start_timeout):
                raise RuntimeError(
                    f"the simulated provider did not start within {self._start_timeout:g} s"
                )
            try:
                self._url = str(self._parent.recv())
            except EOFError:
                self._process.join(timeout=5)
                raise RuntimeError(
                    "the simulated provider's process exited before serving (exit code "
                    f"{self._process.exitcode}); its traceback is on stderr"
                ) from None
        return self._url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL for ``ChatOpenAI(base_url=…)``."""
        return f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        """``GET /sim/stats``."""
        response = httpx.get(f"{self.url}/sim/stats", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def reset(self) -> None:
        """``POST /sim/reset``: empty windows and counters."""
        httpx.post(f"{self.url}/sim/reset", timeout=30).raise_for_status()

    def cpu_s(self) -> float:
        """The child's CPU seconds so far (user + system); NaN where /proc is missing."""
        pid = self._process.pid
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parts = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return math.nan
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
