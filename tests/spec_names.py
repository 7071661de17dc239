"""The specs in specs/, read statically (no plugin, no image): names, folders and markers."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from suitcase.config import PROJECT_ROOT
from suitcase.imagetypes import IMAGE_TYPES


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    images: tuple[str, ...]  # the image types it runs on
    families: tuple[str, ...] | None  # suitcase_family arguments, None: every family
    booted: bool
    ami: bool


def _marks(decorators: list[ast.expr]) -> dict[str, tuple[str, ...]]:
    found = {}
    for node in decorators:
        if isinstance(node, ast.Call):
            args = tuple(a.value for a in node.args if isinstance(a, ast.Constant))
            node = node.func
        else:
            args = ()
        if isinstance(node, ast.Attribute) and node.attr.startswith("suitcase_"):
            found[node.attr] = args
    return found


def _module_marks(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            return _marks(list(items))
    return {}


def specs(root: Path = PROJECT_ROOT / "specs") -> list[Spec]:
    """Every spec function under specs/ with where it runs."""
    found = []
    for path in sorted(root.rglob("test_*.py")):
        folder = path.parent.name
        tree = ast.parse(path.read_text())
        module = _module_marks(tree)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            marks = {**module, **_marks(node.decorator_list)}
            images = tuple(
                t
                for t in IMAGE_TYPES
                if folder in ("common", t) and t in marks.get("suitcase_images", tuple(IMAGE_TYPES))
            )
            found.append(
                Spec(
                    node.name,
                    path,
                    images,
                    marks.get("suitcase_family"),
                    "suitcase_booted" in marks,
                    "suitcase_ami" in marks,
                )
            )
    return found


def debian_specs() -> dict[str, Spec]:
    """The specs that run on Debian 12, AMI specs aside, by name."""
    return {
        s.name: s for s in specs() if not s.ami and (s.families is None or "debian" in s.families)
    }


def spec_names() -> set[str]:
    return {s.name for s in specs()}
