"""Maps the product's named top-level folders under the single import root `toolbench`.

`tools/`, `retriever/`, `distill/` and `templates/` stay at the repository root (they are the
parts a reader looks for) but install as `toolbench.tools`, … so no generic top-level name such
as `tools` lands in site-packages. Sub-packages are found here, so adding a tool needs no edit.

Data-only folders (`templates/<tool>/pools/`, `tools/categories/`) have no `__init__.py`, yet
Python can import them as namespace packages; they are listed as packages too (hence
`find_namespace_packages`), so setuptools ships their files (declared in pyproject.toml's
`[tool.setuptools.package-data]`) without warning that it "would ignore" them.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {
    "toolbench": "toolbench",
    "toolbench.tools": "tools",
    "toolbench.retriever": "retriever",
    "toolbench.distill": "distill",
    "toolbench.templates": "templates",
}
NOT_PACKAGES = ["__pycache__", "*.__pycache__"]

packages: list[str] = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages.extend(f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=NOT_PACKAGES))

setup(packages=packages, package_dir=ROOTS)
