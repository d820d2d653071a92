from toolbench.tools.home_search.simulator import HOME_TYPES, HomeSearch

__all__ = ["HOME_TYPES", "HomeSearch"]
