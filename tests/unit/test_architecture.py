"""The import contracts of docs/ARCHITECTURE.md (pyproject.toml, `[tool.importlinter]`) hold, and
every module of the package is placed in one of their layers.

import-linter builds its graph from the folders of the import root, but `distill/`, `retriever/`,
`tools/` and `templates/` live beside `toolbench/` and install under it (setup.py's ROOTS), which an
editable install maps without a folder to walk. So the installed layout is staged first: a
temporary `toolbench/` of symlinks to the repository's files, found ahead of the editable finder.
`lint-imports` then runs on it in a subprocess (this process has already imported the real
package). `make lint` runs this file as a script for the same check:

    .venv/bin/python tests/unit/test_architecture.py
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"


def package_roots() -> dict[str, str]:
    """setup.py's ROOTS (import name → folder), read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ROOTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no ROOTS")


def stage(dest: Path) -> Path:
    """`dest/toolbench/` laid out as installed: the entries of `toolbench/` and each other root
    folder, as symlinks (import-linter follows them)."""
    package = dest / "toolbench"
    package.mkdir(parents=True)
    for name, folder in package_roots().items():
        if name == "toolbench":
            for entry in (REPO / folder).iterdir():
                if entry.name != "__pycache__":
                    (package / entry.name).symlink_to(entry)
        else:
            parent, _, child = name.rpartition(".")
            assert parent == "toolbench", f"{name}: only roots directly under toolbench are staged"
            (package / child).symlink_to(REPO / folder)
    return dest


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    """The venv's `lint-imports` on the staged tree with the repository's contracts."""
    executable = Path(sys.executable).with_name("lint-imports")
    if not executable.exists():
        raise AssertionError(f"{executable} is missing: install the dev extras (`make setup`)")
    env = {**os.environ, "PYTHONPATH": str(staged), "NO_COLOR": "1"}
    return subprocess.run(
        [str(executable), "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def package_modules(staged: Path) -> set[str]:
    """Every module import-linter sees: each .py file under the staged `toolbench/`."""
    modules = set()
    for path in (staged / "toolbench").rglob("*.py"):
        parts = list(path.relative_to(staged).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.add(".".join(parts))
    return modules


def layer_modules() -> list[str]:
    """The module names the "layers" contract places (optional "(name)" ones included)."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == "layers"]
    names = []
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.append(part.strip().strip("()"))
    return names


def test_import_contracts_hold(tmp_path):
    result = lint_imports(stage(tmp_path))
    assert result.returncode == 0, (
        f"import contracts broken (docs/ARCHITECTURE.md):\n{result.stdout}{result.stderr}"
    )
    assert "BROKEN" not in result.stdout


def test_every_module_is_placed_in_a_layer(tmp_path):
    """A new module names its layer in pyproject.toml (and docs/ARCHITECTURE.md); an unplaced one
    would only be checked through the modules around it."""
    placed = layer_modules()
    # package roots that hold only their children (each placed on its own): nothing to place
    holders = {"toolbench", "toolbench.pipelines"}
    unplaced = sorted(
        module
        for module in package_modules(stage(tmp_path)) - holders
        if not any(module == name or module.startswith(name + ".") for name in placed)
    )
    assert not unplaced, f"modules in no layer of pyproject.toml's [tool.importlinter] contract: {unplaced}"


def test_holders_import_nothing():
    """The package roots left out of the layers (above) stay free of imports of their own."""
    for init in [REPO / "toolbench" / "__init__.py", REPO / "toolbench" / "pipelines" / "__init__.py"]:
        if init.exists():
            tree = ast.parse(init.read_text())
            imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
            assert all(
                isinstance(node, ast.ImportFrom) and node.module == "__future__" for node in imports
            ), f"{init.relative_to(REPO)} imports: place it, or move the code into a placed module"


def main() -> int:
    """`make lint`: print lint-imports' report on the staged tree; its exit status."""
    with tempfile.TemporaryDirectory() as folder:
        result = lint_imports(stage(Path(folder)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
