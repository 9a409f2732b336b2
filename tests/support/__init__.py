"""Test infrastructure written once: servers, ports, recorders and exporters the suite shares.

Import it as ``tests.support`` (pytest puts the repository root on ``sys.path``, see
``pythonpath`` in pyproject.toml; the benchmarks run from the root with ``python -m``):

- `tests.support.redis`: a private redis-server (free port, temporary directory, optional
  password; stop, restart, pause), and the skip with the install hint when there is none.
- `tests.support.ports`: a free loopback port, for a server started next or a port nobody
  answers on.
- `tests.support.sim`: the simulated provider as a fixture (in a thread, reset per test) or in
  a child process, a ``ChatOpenAI`` pointed at it, and its request counters.
- `tests.support.recorders`: a `Decorator` that logs every hook, and a callback handler that
  logs the runs a tracer would see.
- `tests.support.otel`: a Langfuse client whose spans land in memory, and readers for them.

Each module imports only what it needs, so a test of the Redis backend does not load Langfuse.
"""
