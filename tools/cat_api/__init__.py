from toolbench.tools.cat_api.simulator import BREEDS, CATEGORIES, IMAGES, CatApi

TOOL = CatApi

__all__ = ["BREEDS", "CATEGORIES", "IMAGES", "TOOL", "CatApi"]
