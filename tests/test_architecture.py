"""The package's layering (docs/architecture.md), checked on every module's imports.

Each top-level package or module of ``netshrink`` sits on one layer and imports only from
its own layer or those below; kernels are leaf code; no module imports another package's
private names. Function-level (lazy) imports count like the others.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "netshrink"

# Lowest first; the same list as docs/architecture.md.
LAYERS = [
    ("base", {"errors", "atomic", "plots", "version", "distributed"}),
    ("primitives", {"primitives", "kernels"}),
    ("models and data", {"models", "data"}),
    (
        "methods",
        {"layer_patterns", "train", "profile", "prune", "quantize", "binarize", "distill", "peers"},
    ),
    ("format", {"nsz"}),
    ("engine", {"engine", "deploy"}),
    ("runs", {"runs"}),
    ("survey and sweep", {"survey", "sweep"}),
    ("cli", {"cli"}),
]
LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
LEAVES = {"kernels": {"kernels"}, "primitives": {"primitives", "errors"}}


def _unit(path: Path) -> str:
    """The top-level package or module a source file belongs to (``runs``, ``train``)."""
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of every ``netshrink`` import in ``path``."""
    found = []
    package = ".".join(("netshrink", *path.relative_to(SRC).with_suffix("").parts))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: -node.level]
                module = ".".join([*base, module] if module else base)
            found.append((module, [a.name for a in node.names], node.lineno))
    return [(m, names, line) for m, names, line in found if m.split(".")[0] == "netshrink"]


def _target_unit(module: str, names: list[str]) -> list[str]:
    parts = module.split(".")
    if len(parts) > 1:
        return [parts[1]]
    return names  # ``from netshrink import train``: the submodules named


SOURCES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name != "__init__.py")


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in SOURCES}
    assert units == set(LAYER_OF), sorted(units ^ set(LAYER_OF))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_go_down(path):
    unit = _unit(path)
    for module, names, line in _imports(path):
        for target in _target_unit(module, names):
            assert target in LAYER_OF, f"{path.name}:{line} imports netshrink.{target} (no layer)"
            where = f"{path.relative_to(SRC)}:{line} imports {module}"
            if unit in LEAVES:
                assert target in LEAVES[unit], f"{where}: {unit} is leaf code"
            assert LAYER_OF[target] <= LAYER_OF[unit], (
                f"{where}: {LAYERS[LAYER_OF[target]][0]} is above {LAYERS[LAYER_OF[unit]][0]}"
            )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_names_cross_packages(path):
    unit = _unit(path)
    for module, names, line in _imports(path):
        parts = module.split(".")
        if len(parts) < 2 or parts[1] == unit:
            continue
        private = [n for n in [*parts[1:], *names] if n.startswith("_") and n != "__version__"]
        assert not private, f"{path.relative_to(SRC)}:{line} imports {module} {names}"


def test_a_violation_is_caught(tmp_path, monkeypatch):
    """The checks above can fail: a methods module importing the runs layer is refused."""
    fake = tmp_path / "netshrink"
    (fake / "prune").mkdir(parents=True)
    lazy_up = "    from netshrink.runs.train import train_run\n"
    private = "    from netshrink.nsz import _x\n"
    (fake / "prune" / "bad.py").write_text("def f():\n" + lazy_up + private)
    monkeypatch.setattr(f"{__name__}.SRC", fake)
    with pytest.raises(AssertionError, match="runs is above methods"):
        test_imports_only_go_down(fake / "prune" / "bad.py")
    with pytest.raises(AssertionError, match="imports netshrink.nsz"):
        test_no_private_names_cross_packages(fake / "prune" / "bad.py")
