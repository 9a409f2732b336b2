"""The old name of ``llm_routing.sim.model`` (``SimModel``), kept so existing imports work.

An alias rather than a re-export: ``llm_routing.sim.config is llm_routing.sim.model``, so a
module switch set through the old name (``config.FOLLOW_PROVIDER_DOCS = False``) still reaches
the simulator.
"""

import sys

from llm_routing.sim import model

sys.modules[__name__] = model
