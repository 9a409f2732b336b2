"""A decorator's default hooks (async ones, and ``around``) are called in place, not wrapped.

`Decorated` calls ``before``/``after`` directly (and awaits the next level for ``aaround``)
when a decorator keeps the defaults; overridden async hooks are still awaited. Either way the
hooks run in the same order and see the same calls.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel

from llm_routing._decorator import Call, Decorator


class SyncOnly(Decorator):
    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log

    def before(self, call: Call) -> None:
        self.log.append((self.name, "before", dict(call.upstream)))
        call.metadata[f"{self.name}.seen"] = True

    def around(self, call: Call, proceed: Any) -> Any:
        self.log.append((self.name, "sync around"))  # never on ainvoke: aaround is the default
        return proceed()

    def after(self, call: Call, output: Any) -> None:
        self.log.append((self.name, "after", output.content))


class AsyncAround(SyncOnly):
    async def aaround(self, call: Call, proceed: Any) -> Any:
        self.log.append((self.name, "aaround"))
        return await proceed()

    async def aafter(self, call: Call, output: Any) -> None:
        self.log.append((self.name, "aafter"))


async def test_default_async_hooks_call_the_sync_ones_in_order():
    log: list[Any] = []
    model = (SyncOnly("outer", log) | SyncOnly("inner", log)) | ParrotFakeChatModel()
    answer = await model.ainvoke("hi")
    assert answer.content == "hi"
    assert log == [
        ("outer", "before", {}),
        ("inner", "before", {"outer.seen": True}),
        ("inner", "after", "hi"),
        ("outer", "after", "hi"),
    ]


async def test_overridden_async_hooks_are_awaited():
    log: list[Any] = []
    model = (AsyncAround("a", log) | SyncOnly("b", log)) | ParrotFakeChatModel()
    await model.ainvoke("hi")
    assert log == [
        ("a", "before", {}),
        ("a", "aaround"),
        ("b", "before", {"a.seen": True}),
        ("b", "after", "hi"),
        ("a", "aafter"),
    ]


class Plain(Decorator):
    """Only ``before`` and ``after``: its ``around`` is the default that proceeds."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def before(self, call: Call) -> None:
        self.log.append(("plain", "before"))

    def after(self, call: Call, output: Any) -> None:
        self.log.append(("plain", "after", output.content))


def test_a_default_around_proceeds_in_place_and_an_overridden_one_is_called():
    log: list[Any] = []
    model = (SyncOnly("s", log) | Plain(log)) | ParrotFakeChatModel()
    assert model.invoke("hi").content == "hi"
    assert log == [
        ("s", "before", {}),
        ("s", "sync around"),
        ("plain", "before"),
        ("plain", "after", "hi"),
        ("s", "after", "hi"),
    ]
