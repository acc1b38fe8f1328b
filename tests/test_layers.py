"""The architecture as ARCHITECTURE.md draws it: nothing imports upward, no private name crosses a package."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "protege"
LAYERS = {"utils": 0, "errors": 0, "data": 1, "models": 1, "losses": 1, "objectives": 2, "evaluation": 2, "pruning": 2,
          "extraction": 2, "deploy": 2, "engine": 3, "recipes": 4, "reporting": 4, "cli": 5}
IMPORT = re.compile(r"^\s*(?:from|import) protege\.([a-z_]+)[\w.]*(?: import (.*))?$")


def _imports():
    for path in sorted(SRC.rglob("*.py")):
        package = path.relative_to(SRC).parts[0].removesuffix(".py")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = IMPORT.match(line)
            if match:
                yield path.relative_to(SRC), number, package, match.group(1), match.group(2) or ""


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir()
                if not p.name.startswith((".", "_")) and (p.is_dir() or p.suffix == ".py")}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_nothing_imports_upward():
    upward = [f"{path}:{n} {pkg} -> {target}" for path, n, pkg, target, _ in _imports()
              if pkg in LAYERS and target in LAYERS and LAYERS[target] > LAYERS[pkg]]
    assert not upward, upward


def test_no_private_name_crosses_a_package():
    crossing = [f"{path}:{n} {names}" for path, n, pkg, target, names in _imports()
                if target != pkg and re.search(r"(^|[ ,(])_[a-z]", names)]
    assert not crossing, crossing
