from toolbench.tools.tabletop.simulator import COLOURS, POSITIONS, Tabletop

TOOL = Tabletop

__all__ = ["COLOURS", "POSITIONS", "TOOL", "Tabletop"]
