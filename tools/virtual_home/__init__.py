from toolbench.tools.virtual_home.simulator import FURNITURE, PORTABLE, ROOMS, VirtualHome

TOOL = VirtualHome

__all__ = ["FURNITURE", "PORTABLE", "ROOMS", "TOOL", "VirtualHome"]
