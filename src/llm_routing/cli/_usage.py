"""How a command says the user asked for something it cannot do: ``UsageError``, exit code 2.

Shared by every command module, which raise it; ``cli.main`` prints it as
``llm-routing COMMAND: error: ...`` and returns ``EXIT_USAGE``.
"""

from __future__ import annotations

from llm_routing._hints import did_you_mean

__all__ = ["EXIT_USAGE", "UsageError", "did_you_mean", "sim_missing"]

#: The exit code of bad usage, as argparse uses it.
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad value the parser could not check itself (unknown provider, tier); exit code 2."""


def sim_missing(exc: ImportError) -> UsageError:
    """The error for a command that needs the ``sim`` extra, naming the missing module."""
    return UsageError(
        f"the simulator needs the 'sim' extra ({exc.name} is missing): "
        'pip install "llm-routing[sim]"'
    )
