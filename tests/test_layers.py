"""The package layers of `../shared/DESIGN.md`, enforced: no import reaches up a layer, a few
packages on one layer stay apart, and no two packages import each other, directly or around a
cycle. Every import counts, also the ones inside functions (they still couple the packages).

The checker reads the source with `ast`, imports nothing, and is shown to fail on a planted
upward import and on a planted cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lower layers first. A package may import its own layer and those below, except as FORBIDDEN says.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("0", ("errors", "host", "paths", "types")),  # base
    ("1", ("algo", "data", "rewards", "tasks", "models", "tracking")),  # domain
    ("2", ("config", "weights", "rollout", "learner")),  # config and engines
    ("2b", ("placement",)),  # starting the engines' actors, for both loops
    ("3", ("trainer", "eval")),  # loops
    ("4", ("bench",)),  # tools
    ("5", ("launch", "plan", "jobs", "hydra_plugins")),  # entry points
]
LAYER_OF = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}
LABEL_OF = {package: label for label, packages in LAYERS for package in packages}

# Same-layer imports that would tangle what the design keeps apart.
FORBIDDEN = {
    ("rollout", "learner"): "rollout and learner meet through rft.weights and rft.types",
    ("learner", "rollout"): "rollout and learner meet through rft.weights and rft.types",
    ("eval", "trainer"): "shared pieces of the loops live in lower layers",
    ("data", "tasks"): "tasks use data, not the other way round",
    ("rewards", "tasks"): "tasks use rewards, not the other way round",
}


def package_of(module: str) -> str | None:
    """`rft.learner.worker` -> `learner`; `rft.launch` -> `launch`; the plugin -> `hydra_plugins`."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "hydra_plugins"
    if parts[0] != "rft" or len(parts) < 2:
        return None
    return parts[1]


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of the modules `source` imports (relative imports resolved against `module`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from rft import types`
    return found


def package_edges(root: Path) -> dict[tuple[str, str], str]:
    """(importer, imported) package pairs under `root`, each with one file that makes the edge."""
    edges: dict[tuple[str, str], str] = {}
    for top in ("rft", "hydra_plugins"):
        for path in sorted((root / top).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            source_package = package_of(module)
            for name in imported_modules(path.read_text(), module):
                target = package_of(name)
                if source_package and target and target != source_package and target in LAYER_OF:
                    edges.setdefault((source_package, target), str(path.relative_to(root)))
    return edges


def layer_violations(edges: dict[tuple[str, str], str]) -> list[str]:
    problems = []
    for (source, target), where in sorted(edges.items()):
        if source not in LAYER_OF:
            problems.append(f"{where}: package {source!r} has no layer in tests/test_layers.py")
        elif LAYER_OF[target] > LAYER_OF[source]:
            problems.append(f"{where}: {source} (layer {LABEL_OF[source]}) imports {target} (layer {LABEL_OF[target]})")
        elif (source, target) in FORBIDDEN:
            problems.append(f"{where}: {source} imports {target}: {FORBIDDEN[source, target]}")
    return problems


def package_cycles(edges: dict[tuple[str, str], str]) -> list[list[str]]:
    """Every cycle between packages, each as the list of its packages (depth-first search)."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    cycles, seen = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle + [nxt])
            else:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def test_every_package_has_a_layer() -> None:
    entries = [p for p in (ROOT / "rft").iterdir() if (p.is_dir() and any(p.glob("*.py"))) or p.suffix == ".py"]
    packages = {p.stem for p in entries} - {"__init__"}
    assert packages - set(LAYER_OF) == set()


def test_no_import_reaches_up_a_layer() -> None:
    assert layer_violations(package_edges(ROOT)) == []


def test_no_import_cycle_between_packages() -> None:
    assert package_cycles(package_edges(ROOT)) == []


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "hydra_plugins").mkdir(exist_ok=True)
    return root


def test_checker_fails_on_a_planted_upward_import(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "rft/__init__.py": "",
        "rft/rewards/__init__.py": "def score():\n    from rft.trainer.rl import RLTrainer\n",
        "rft/trainer/__init__.py": "",
        "rft/trainer/rl.py": "from rft.rewards import score\n",
    })  # fmt: skip
    edges = package_edges(root)
    assert layer_violations(edges) == ["rft/rewards/__init__.py: rewards (layer 1) imports trainer (layer 3)"]
    assert package_cycles(edges) == [["rewards", "trainer", "rewards"]]


def test_checker_fails_on_a_planted_same_layer_tangle(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "rft/__init__.py": "",
        "rft/learner/batch.py": "from rft.rollout import vllm_engine\n",
        "rft/rollout/vllm_engine.py": "from ..learner import batch\n",
    })  # fmt: skip
    edges = package_edges(root)
    assert [p.split(": ")[1] for p in layer_violations(edges)] == ["learner imports rollout", "rollout imports learner"]
    assert package_cycles(edges) == [["learner", "rollout", "learner"]]


@pytest.mark.parametrize("module, source, expected", [
    ("rft.trainer.rl", "from . import checkpoint", {"rft.trainer", "rft.trainer.checkpoint"}),
    ("rft.trainer.rl", "from ..eval.runner import x", {"rft.eval.runner", "rft.eval.runner.x"}),
    ("rft.launch", "import rft.trainer", {"rft.trainer"}),
])  # fmt: skip
def test_imported_modules_resolves_relative_imports(module: str, source: str, expected: set[str]) -> None:
    assert imported_modules(source, module) == expected
