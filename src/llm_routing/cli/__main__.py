"""``python -m llm_routing.cli``: the ``llm-routing`` command."""

from llm_routing.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
