"""A host simulator: N SSH hosts on loopback answering the collector from captured outputs,
with files that change for the watcher and per-host misbehaviour. See ``server.Simulator``."""

from services.simulator.hosts import Misbehaviour, SimHost, parse_specs
from services.simulator.server import Simulator

__all__ = ["Misbehaviour", "SimHost", "Simulator", "parse_specs"]
