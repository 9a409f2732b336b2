"""The scheduler charges a token window `_facts.output_estimate` and caches models in `PerModel`.

The rule is tested on its own in test_facts.py; here it is the scheduler's admission price
(what ``llm_routing.reserved_tokens`` says reached the model), so the three decorators cannot
drift apart again.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing._decorator import Call, Decorator
from llm_routing._facts import DEFAULT_OUTPUT_ESTIMATE, PerModel, output_estimate
from llm_routing.catalog import Limits, ModelSpec, default_catalog
from llm_routing.schedule import DEFAULT_RESERVE_OUTPUT, RateScheduler, VirtualClock

INPUT = 100


class Model(BaseChatModel):
    """A chat model named like a catalogue model that records what each call's metadata said."""

    model_name: str = "tiny-window"
    max_tokens: int | None = None
    seen: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "fake"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "acme"
        return params

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.seen.append(dict(run_manager.metadata) if run_manager is not None else {})
        message = AIMessage(
            content="ok",
            usage_metadata={"input_tokens": INPUT, "output_tokens": 1, "total_tokens": INPUT + 1},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class Counted(Decorator):
    """An outer guard's input count, so the reserve is ``INPUT`` plus the output estimate."""

    def before(self, call: Call) -> None:
        call.metadata["llm_routing.input_tokens"] = INPUT


def catalog_with(spec: ModelSpec) -> Any:
    catalog = default_catalog().copy()
    catalog.register(spec)
    return catalog


SMALL = ModelSpec(
    provider="acme",
    name="tiny-window",
    context_window=2_048,
    rate_limits={"tier1": Limits(rpm=1_000, tpm=1_000_000)},
)
CAPPED = ModelSpec(
    provider="acme",
    name="capped",
    context_window=200_000,
    max_output_tokens=300,
    rate_limits={"tier1": Limits(rpm=1_000, tpm=1_000_000)},
)


def reserved(spec: ModelSpec, model: Model, **options: Any) -> int:
    scheduler = RateScheduler(catalog=catalog_with(spec), clock=VirtualClock(), **options)
    model.seen = []
    (Counted() | scheduler | model).invoke("hi")
    return int(model.seen[0]["llm_routing.reserved_tokens"]) - INPUT


def test_the_old_constant_stays_importable_as_the_estimates_default():
    assert DEFAULT_RESERVE_OUTPUT == DEFAULT_OUTPUT_ESTIMATE == 1024


def test_a_small_window_model_is_charged_a_quarter_of_its_window_not_1024():
    # The one behaviour change of the switch: min(1024, ceiling), and the ceiling of a
    # 2,048-token window is 512 (the scheduler's own rule charged 1,024 here).
    assert reserved(SMALL, Model()) == 512 == output_estimate(SMALL, {}, None)


def test_the_models_output_limit_caps_the_default():
    assert reserved(CAPPED, Model(model_name="capped")) == 300


def test_an_explicit_max_tokens_wins_on_the_model_or_in_the_call():
    assert reserved(SMALL, Model(max_tokens=1_500)) == 1_500
    scheduler = RateScheduler(catalog=catalog_with(SMALL), clock=VirtualClock())
    model = Model()
    model.seen = []
    (Counted() | scheduler | model.bind(max_tokens=700)).invoke("hi")
    assert model.seen[0]["llm_routing.reserved_tokens"] - INPUT == 700


def test_reserve_output_replaces_the_default_but_not_an_explicit_max_tokens():
    assert reserved(SMALL, Model(), reserve_output=40) == 40
    assert reserved(SMALL, Model(max_tokens=90), reserve_output=40) == 90


def test_models_are_resolved_once_each_in_a_bounded_per_model_cache():
    scheduler = RateScheduler(catalog=catalog_with(SMALL), clock=VirtualClock())
    assert isinstance(scheduler._specs, PerModel)
    model = Model()
    decorated = scheduler | model
    decorated.invoke("hi")
    first = scheduler._resolve(model)
    decorated.invoke("hi")
    assert scheduler._resolve(model) is first
    assert len(scheduler._specs) == 1


def test_reserve_output_is_not_capped_by_the_models_output_limit():
    # The other behaviour change: the scheduler's own rule capped reserve_output at the
    # model's output limit (300 here); `_facts` takes the setting as given, as the guard does.
    assert reserved(CAPPED, Model(model_name="capped"), reserve_output=500) == 500
