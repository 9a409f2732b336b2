"""Build a router from a TOML file, and see how a mistake in one is reported.

Runs against the simulated provider (no API key): ``python examples/config_file.py``.
The file (``examples/router.toml``) holds what a deployment tunes; secrets and endpoints are
passed as ``init_kwargs`` in code and win over the file.
"""

from __future__ import annotations

from pathlib import Path

from llm_routing import default_catalog, from_config
from llm_routing.sim import SimModel, SimulatedProvider

CONFIG = Path(__file__).with_name("router.toml")
# Twins of the catalogue models the file names: same windows and tier-1 limits.
MODELS = [
    SimModel.from_spec(default_catalog().get(f"openai:{name}"))
    for name in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
]


def main() -> None:
    """Load the file, route a question and a long report, then load a file with a typo."""
    with SimulatedProvider(MODELS) as sim:
        router = from_config(CONFIG, init_kwargs={"base_url": sim.base_url, "api_key": "sim"})
        print(f"{CONFIG.name}: {router}")
        print(f"settings: max_wait={router.settings['max_wait']}, tier={router.settings['tier']}")
        for prompt in ("Hello!", "Summarise:\n" + "Sales rose in the third quarter. " * 25_000):
            served_by = router.invoke(prompt).response_metadata["llm_routing.model"]
            print(f"{len(prompt):>9,} characters -> {served_by}")
        print(f"total cost ${router.stats()['total_cost']:.6f}")

    # The whole tree is checked before any model is built; errors name the key and the source.
    try:
        from_config({"router": {"primary": "openai:gpt-4o-mini", "max_wiat": 5}})
    except ValueError as exc:
        print(f"\na typo is caught at load time:\n  {exc}")


if __name__ == "__main__":
    main()
