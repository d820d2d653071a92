from toolbench.tools.home_search.simulator import HOME_TYPES, HomeSearch

TOOL = HomeSearch

__all__ = ["HOME_TYPES", "TOOL", "HomeSearch"]
