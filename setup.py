"""Maps the product's named top-level folders under the single import root `toolbench`.

`tools/`, `retriever/`, `distill/` and `templates/` stay at the repository root (they are the
parts a reader looks for) but install as `toolbench.tools`, … so no generic top-level name such
as `tools` lands in site-packages. Sub-packages are found here, so adding a tool needs no edit.
"""

from setuptools import find_packages, setup

ROOTS = {
    "toolbench": "toolbench",
    "toolbench.tools": "tools",
    "toolbench.retriever": "retriever",
    "toolbench.distill": "distill",
    "toolbench.templates": "templates",
}

packages: list[str] = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages.extend(f"{package}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=ROOTS)
