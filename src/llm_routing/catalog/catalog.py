"""Old home of the `Catalog`, kept so existing imports work; see ``lookup`` and ``sources``."""

from llm_routing.catalog.lookup import Catalog, default_catalog, normalize_provider
from llm_routing.catalog.sources import spec_from_dict

# Doctest runs of this old path still find the examples (doctest's own hook).
__test__ = {"Catalog": Catalog, "default_catalog": default_catalog}

__all__ = ["Catalog", "default_catalog", "normalize_provider", "spec_from_dict"]
