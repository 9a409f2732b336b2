"""Reliability report: the fault matrix, bad input, the soak run and the secrets scan.

Each part is a module with ``run(quick=False) -> dict`` and ``render(result) -> str``; the tests in
``tests/reliability/`` drive the same engines and assert their invariants.
"""
