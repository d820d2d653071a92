from toolbench.tools.webshop.simulator import PRODUCTS, WebShop

TOOL = WebShop

__all__ = ["PRODUCTS", "TOOL", "WebShop"]
