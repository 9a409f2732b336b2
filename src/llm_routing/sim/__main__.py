"""``python -m llm_routing.sim serve``: see ``sim.serve``."""

from llm_routing.sim.serve import main, serve_main

__all__ = ["serve_main"]

if __name__ == "__main__":
    raise SystemExit(main())
