"""What a fallback chain tried: `Attempt` (one model and why it failed), `AllModelsFailedError`.

Apart from the taxonomy because both classify each error: they sit above ``classify``, which
reads the taxonomy's classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llm_routing.errors.classify import classify
from llm_routing.errors.taxonomy import ErrorKind, LLMRoutingError

__all__ = ["AllModelsFailedError", "Attempt"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One model the router tried, and why it did not answer."""

    model: str
    error: BaseException

    @property
    def kind(self) -> ErrorKind:
        """How the failure was classified."""
        return classify(self.error)


class AllModelsFailedError(LLMRoutingError, RuntimeError):
    """Every model of a fallback chain failed. ``attempts`` says which failed, and why.

    LangChain's own ``with_fallbacks`` re-raises only the first error, which hides why the
    fallbacks failed too. Also a ``RuntimeError``, as the seed's callers expect.

    Example:
        Both models' guards refuse a 200k-token input, before any request is sent:

        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import AllModelsFailedError, build_router
        >>> router = build_router(
        ...     ChatOpenAI(model="gpt-4o-mini", api_key="unused", max_retries=0),
        ...     [ChatOpenAI(model="gpt-4o", api_key="unused", max_retries=0)],
        ... )
        >>> try:
        ...     router.invoke("word " * 200_000)
        ... except AllModelsFailedError as exc:
        ...     print([(attempt.model, attempt.kind.value) for attempt in exc.attempts])
        [('openai:gpt-4o-mini', 'context'), ('openai:gpt-4o', 'context')]
    """

    def __init__(self, attempts: Iterable[Attempt | tuple[str, BaseException]]) -> None:
        self.attempts: list[Attempt] = [
            a if isinstance(a, Attempt) else Attempt(model=a[0], error=a[1]) for a in attempts
        ]
        lines = [
            f"  - {a.model}: {a.kind.value}: {type(a.error).__name__}: {_first_line(a.error)}"
            for a in self.attempts
        ]
        message = f"all {len(self.attempts)} models failed:\n" + "\n".join(lines)
        self.message = message
        super().__init__(message)

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions, in the order the models were tried."""
        return [a.error for a in self.attempts]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.attempts,))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."
