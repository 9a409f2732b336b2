"""Old home of the `Catalog`, kept so existing imports work; see ``lookup`` and ``sources``."""

from llm_routing.catalog.lookup import Catalog, default_catalog, normalize_provider
from llm_routing.catalog.sources import spec_from_dict

__all__ = ["Catalog", "default_catalog", "normalize_provider", "spec_from_dict"]
