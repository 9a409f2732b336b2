"""The old name of ``llm_routing.sim.serve``, kept so existing imports work.

The simulator's command line is ``serve`` only now; the demo moved to ``llm_routing.cli.demo``
(it drives the router, and the simulator imports nothing of the product).
"""

from llm_routing.sim.serve import main, serve_main

__all__ = ["main", "serve_main"]
