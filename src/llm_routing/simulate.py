"""The old home of the capacity planner, now ``llm_routing.cli.plan``: re-exports only."""

from llm_routing.cli.plan.report import ModelResult as ModelResult
from llm_routing.cli.plan.report import SimulationReport as SimulationReport
from llm_routing.cli.plan.run import simulate as simulate
from llm_routing.cli.plan.section import DEFAULT_LATENCY as DEFAULT_LATENCY
from llm_routing.cli.plan.workload import Arrival as Arrival
from llm_routing.cli.plan.workload import parse_duration as parse_duration
from llm_routing.cli.plan.workload import parse_rate as parse_rate
from llm_routing.cli.plan.workload import parse_workload as parse_workload
from llm_routing.cli.plan.workload import rate_workload as rate_workload
from llm_routing.cli.plan.workload import read_workload as read_workload
