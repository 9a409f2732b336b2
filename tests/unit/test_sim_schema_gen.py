from __future__ import annotations

import random
from datetime import date
from enum import Enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from llm_routing.sim.schema_gen import sample_from_schema


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    sku: str = Field(min_length=5, max_length=8)
    quantity: int = Field(ge=1, le=3)
    price: float = Field(gt=0, lt=10)


class Order(BaseModel):
    id: int
    color: Color
    status: Literal["open", "closed"]
    items: list[Item] = Field(min_length=1)
    note: str | None = None
    shipped: date
    tags: dict[str, int]


class Node(BaseModel):
    name: str
    children: list[Node] = []


@pytest.mark.parametrize("model", [Item, Order, Node])
def test_sample_validates_against_the_pydantic_model(model):
    value = sample_from_schema(model.model_json_schema(), rng=random.Random(3))
    model.model_validate(value)


def test_same_rng_state_gives_the_same_sample():
    schema = Order.model_json_schema()
    assert sample_from_schema(schema, rng=random.Random(5)) == sample_from_schema(
        schema, rng=random.Random(5)
    )


def test_recursive_schema_terminates():
    value = sample_from_schema(Node.model_json_schema())
    depth = 0
    while value.get("children"):
        value = value["children"][0]
        depth += 1
    assert depth < 10


def test_all_of_merges_properties():
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {"const": "x"}}},
        ]
    }
    value = sample_from_schema(schema)
    assert isinstance(value["a"], int)
    assert value["b"] == "x"


def test_array_respects_max_items():
    assert sample_from_schema({"type": "array", "items": {"type": "string"}, "maxItems": 1}) != []
    assert len(sample_from_schema({"type": "array", "items": {}, "maxItems": 1})) == 1


def test_unresolvable_ref_is_a_clear_error():
    with pytest.raises(ValueError, match="does not resolve"):
        sample_from_schema({"$ref": "#/$defs/Missing"})


def test_non_mapping_schema_is_a_type_error():
    with pytest.raises(TypeError, match="schema"):
        sample_from_schema(["not", "a", "schema"])
