"""Scripted replies: what a simulated model answers when a prompt asks for something exact.

The simulator cannot read a prompt, so by default it invents text and tool arguments. A test
that checks *what* a model answered (the tool call's arguments, the JSON keys a prompt asked
for) needs a recorded answer instead, as LangChain's own integration tests replay VCR
cassettes when no live model is at hand. ``SimModel(replies=[Reply(...), ...])`` is that
double: the first reply whose ``when`` matches the text of the last user message (and that
the request allows, see ``Reply``) is the answer, sent through the same life cycle as any
other (admitted, rate-limited, counted from its real token counts, cut at ``max_tokens``,
faults drawn, streamed as OpenAI streams it), over HTTP and in process (``SimChatModel``).

Nothing here knows any particular test suite: a reply is a pattern and an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Reply", "ScriptedCall", "last_user_text", "load_replies", "pick_reply"]

MatchMode = Literal["substring", "regex"]


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One tool call of a scripted reply: the tool's name and its arguments as JSON text.

    Arguments are kept as the JSON text the wire carries (``ensure_ascii=False``, as OpenAI
    sends non-ASCII characters unescaped), so a reply is hashable like the ``SimModel`` it
    belongs to, and its tokens are counted from exactly what is sent.
    """

    name: str
    arguments: str

    @classmethod
    def of(cls, call: ScriptedCall | Mapping[str, Any]) -> ScriptedCall:
        """``{"name": ..., "args": {...}}`` (LangChain's shape) or ``"arguments"`` JSON text."""
        if isinstance(call, ScriptedCall):
            return call
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise TypeError(f"a scripted tool call is {{'name': str, 'args': dict}}, got {call!r}")
        if "arguments" in call:
            arguments = call["arguments"]
            if not isinstance(arguments, str):
                raise TypeError(f"tool call 'arguments' must be JSON text, got {arguments!r}")
        else:
            args = call.get("args", {})
            if not isinstance(args, Mapping):
                raise TypeError(f"tool call 'args' must be a mapping, got {args!r}")
            arguments = json.dumps(dict(args), ensure_ascii=False)
        return cls(call["name"], arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """A recorded answer, given when ``when`` matches the last user message's text.

    ``match="substring"`` (the default) looks for ``when`` as written; ``"regex"`` searches
    with ``re.search`` (so anchor it yourself). The answer is ``content`` (text; any other
    value is sent as its JSON text, for JSON mode), or ``tool_calls`` (each
    ``{"name": ..., "args": {...}}``; several are parallel calls), not both.

    A reply answers only what the request allows, as a real model would, else the next reply
    is tried and, if none fits, the model's invented answer: tool calls need every tool they
    name among the request's ``tools``, a ``tool_choice`` other than ``"none"`` and, after a
    tool result, a forced choice (so an agent loop ends); a forced function must be among them.
    Text never answers a request that forces a tool call.

    Example:
        >>> Reply(when="magic_function(3)", tool_calls=[{"name": "magic_function",
        ...       "args": {"input": 3}}]).tool_calls[0].arguments
        '{"input": 3}'
        >>> Reply(when="joke", content={"setup": "s", "punchline": "p"}).content
        '{"setup": "s", "punchline": "p"}'
    """

    when: str
    content: Any = None
    tool_calls: Sequence[ScriptedCall | Mapping[str, Any]] = ()
    match: MatchMode = "substring"
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.when, str) or not self.when:
            raise ValueError(f"Reply.when must be a non-empty string, got {self.when!r}")
        if self.match not in ("substring", "regex"):
            raise ValueError(f"Reply.match must be 'substring' or 'regex', got {self.match!r}")
        calls = tuple(ScriptedCall.of(c) for c in self.tool_calls)
        object.__setattr__(self, "tool_calls", calls)
        if self.content is not None and not isinstance(self.content, str):
            object.__setattr__(self, "content", json.dumps(self.content, ensure_ascii=False))
        if calls and self.content is not None:
            raise ValueError("a Reply answers with content or with tool_calls, not both")
        if not calls and self.content is None:
            raise ValueError("a Reply needs content= or tool_calls=")
        if self.match == "regex":
            try:
                pattern = re.compile(self.when)
            except re.error as exc:
                raise ValueError(f"Reply.when is not a valid regex ({exc}): {self.when!r}") from exc
            object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """A reply from its JSON form (``sim serve --replies``): the constructor's keywords."""
        known = {"when", "content", "tool_calls", "match"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Reply field(s) {unknown}; expected {sorted(known)}")
        return cls(**dict(data))

    def matches(self, text: str) -> bool:
        """Whether ``text`` (the last user message) is what this reply was recorded for."""
        if self._pattern is not None:
            return self._pattern.search(text) is not None
        return self.when in text

    @property
    def calls(self) -> tuple[ScriptedCall, ...]:
        """The tool calls, normalised (``tool_calls`` as given may be mappings)."""
        return tuple(ScriptedCall.of(c) for c in self.tool_calls)

    def allowed(self, request_tools: Iterable[str], tool_choice: Any, after_tool: bool) -> bool:
        """Whether a request offering ``request_tools`` under ``tool_choice`` may get this."""
        forced: str | None = None
        if isinstance(tool_choice, Mapping):
            forced = (tool_choice.get("function") or {}).get("name")
        must_call = forced is not None or tool_choice == "required"
        if not self.tool_calls:
            return not must_call
        names = {c.name for c in self.calls}
        if tool_choice == "none" or not names <= set(request_tools):
            return False
        if forced is not None and forced not in names:
            return False
        return must_call or not after_tool


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last ``user`` message (its text parts joined), ``""`` if none."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
        return ""
    return ""


def pick_reply(
    replies: Sequence[Reply],
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    tool_choice: Any,
) -> Reply | None:
    """The first of ``replies`` matching the last user message that the request allows."""
    if not replies:
        return None
    text = last_user_text(messages)
    names = [t["function"]["name"] for t in tools]
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    for reply in replies:
        if reply.matches(text) and reply.allowed(names, tool_choice, after_tool):
            return reply
    return None


def load_replies(source: str | Path | Any) -> dict[str | None, tuple[Reply, ...]]:
    """Replies from their JSON form (a file path, or the decoded document), per model.

    A list of reply objects (``{"when": ..., "content": ...}`` or ``"tool_calls"``) is for
    every model: its key is ``None``. An object maps model names (or aliases) to such lists.
    This is how ``sim serve --replies FILE`` configures a server outside Python.
    """
    data = json.loads(Path(source).read_text("utf-8")) if isinstance(source, str | Path) else source
    if isinstance(data, list):
        return {None: _replies_of(data, "the replies")}
    if isinstance(data, Mapping):
        return {str(name): _replies_of(items, f"replies[{name!r}]") for name, items in data.items()}
    raise ValueError("replies must be a JSON list of replies, or an object of model -> list")


def _replies_of(items: Any, where: str) -> tuple[Reply, ...]:
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError(f"{where} must be a list of reply objects, got {items!r}")
    return tuple(Reply.from_dict(item) for item in items)
