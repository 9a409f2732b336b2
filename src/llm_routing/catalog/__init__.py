"""The model catalogue: what each model is (``ModelSpec``) and how to look it up (``Catalog``).

Shipped data lives in ``data/models.json``; ``load_litellm`` reads LiteLLM's price file format.
"""

from llm_routing.catalog.litellm import LiteLLMLoadResult
from llm_routing.catalog.lookup import Catalog, default_catalog, normalize_provider
from llm_routing.catalog.spec import Limits, ModelSpec, Price

__all__ = [
    "Catalog",
    "Limits",
    "LiteLLMLoadResult",
    "ModelSpec",
    "Price",
    "default_catalog",
    "normalize_provider",
]
