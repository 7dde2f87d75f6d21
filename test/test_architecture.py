"""The import graph of the package keeps its floors: the ROS layer on top, no cycles, inference apart.

Read statically (every ``import`` in every module, including the lazy ones inside functions), so an
arrow that only appears on a rarely taken code path is caught too. docs/concepts.md ("Architecture")
describes the same rules in words.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "beam_tracking_ros"

#: rooms of the ROS-free core: none of them may import ros/
CORE = ("channel", "sim", "io", "data", "models", "kd", "metrics", "train", "references", "tracking",
        "inference")


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        if "fallback" in f.relative_to(PKG).parts:  # the launch fallback mirrors upstream launch's own layout
            continue
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if f.name == "__init__.py" else parts)] = f
    return out


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {}
    for mod, f in mods.items():
        pkg = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target, *(f"{target}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for t in names:
                # an import of a parent package (``from . import X``) is not an arrow between rooms
                if t in mods and t != mod and not mod.startswith(t + "."):
                    edges.setdefault(mod, set()).add(t)
    return edges


def _room(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_nothing_outside_ros_imports_ros() -> None:
    bad = sorted(f"{a} -> {b}" for a, bs in _edges().items() for b in bs
                 if _room(a) in CORE and _room(b) == "ros")
    assert bad == []


def test_no_import_cycles() -> None:
    edges = _edges()
    cycles = []
    for a, bs in edges.items():
        for b in bs:
            stack, seen = [b], {b}
            while stack:
                x = stack.pop()
                if x == a:
                    cycles.append(f"{a} -> {b}")
                    break
                for y in edges.get(x, ()):
                    if y not in seen:
                        seen.add(y)
                        stack.append(y)
    assert sorted(cycles) == []


def test_inference_and_the_tracker_import_no_training_code() -> None:
    edges = _edges()

    def reach(start: str) -> set[str]:
        seen, stack = {start}, [start]
        while stack:
            for y in edges.get(stack.pop(), ()):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        return seen

    for start in ("beam_tracking_ros.inference", "beam_tracking_ros.tracking", "beam_tracking_ros.ros.beam_tracker_node"):
        assert sorted(m for m in reach(start) if _room(m) in ("train", "kd")) == [], start
