"""``python -m llm_routing.sim serve|demo``: see ``sim.cli``."""

from llm_routing.sim.cli import main, serve_main

__all__ = ["serve_main"]

if __name__ == "__main__":
    raise SystemExit(main())
