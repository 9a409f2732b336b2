"""The router: a fallback chain of decorated chat models, built from names, instances or a file.

The package face: ``router`` (the `Router` runnable), ``chain`` (its one fallback loop),
``stats`` (its counters), ``build`` (`build_router`, `init_model`), ``seed``
(`create_auto_picker_llm`) and ``from_config`` (the TOML/YAML/dict format). Public names keep
``llm_routing.router`` as their module, the path users import them from.
"""

from llm_routing.router.build import build_router, init_model
from llm_routing.router.router import Router
from llm_routing.router.seed import create_auto_picker_llm

# `from_config` stays under its module's name (llm_routing.router.from_config): re-exported here
# it would hide that module. Users import it from llm_routing (or llm_routing.config).
__all__ = ["Router", "build_router", "create_auto_picker_llm", "init_model"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
