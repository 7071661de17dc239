"""The specs in specs/, read statically (no plugin, no image): names, folders and markers."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from suitcase.config import PROJECT_ROOT
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.summary import image_of_case


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


def _family_matches(families: tuple[str, ...] | None, family: str, major: int) -> bool:
    """`suitcase_family` arguments read on their own: debian, debian12, el8+ ..."""
    if families is None:
        return True
    for name in families:
        match = re.fullmatch(r"(debian|el)(\d+)?(\+)?", name)
        if match is None or match.group(1) != family:
            continue
        if match.group(2) is None:
            return True
        wanted = int(match.group(2))
        if major == wanted or (match.group(3) and major > wanted):
            return True
    return False


def expected(
    image: str, mode: str, ami: bool, family: str = "debian", major: int = 12
) -> tuple[set[str], set[str]]:
    """(specs that must run and pass, specs skipped as planned) on `image` of a `family`
    `major` OS in `mode` (auto/offline), computed from the spec files alone: the exact clean
    control of a verification run (issue 21, item 3). `ami`: whether the AMI specs are in the
    run (they are left out with -m 'not suitcase_ami')."""
    offline = mode == "offline" or IMAGE_TYPES[image].verification == "offline"
    run: set[str] = set()
    skipped: set[str] = set()
    for spec in specs():
        if image not in spec.images or (spec.ami and not ami):
            continue
        if not _family_matches(spec.families, family, major) or (spec.booted and offline):
            skipped.add(spec.name)
        else:
            run.add(spec.name)
    return run, skipped


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(spec, image) -> passed / failed / error / skipped, from the run's JUnit report."""
    found: dict[tuple[str, str], str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        spec, _, image = name.partition("[")
        state = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                state = {"failure": "failed"}.get(tag, tag)
                break
        key = (spec, image.rstrip("]"))
        # a teardown error is a second testcase of the same name: the worse outcome stays
        if found.get(key) not in ("failed", "error"):
            found[key] = state
    return found


def per_image(seen: dict[tuple[str, str], str]) -> dict[str, tuple[set[str], set[str]]]:
    """image type -> (specs that ran, specs skipped), from `outcomes` (a case id such as
    `/etc/fstab-aws-hvm` belongs to the image type it names)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for (spec, case), state in seen.items():
        image = image_of_case(f"{spec}[{case}]", list(IMAGE_TYPES)) or case
        ran, skipped = found.setdefault(image, (set(), set()))
        (skipped if state == "skipped" else ran).add(spec)
    return found


def failure_texts(junit: Path) -> dict[tuple[str, str], str]:
    """(spec, case id) -> the text of its failure or error (message and details)."""
    found: dict[tuple[str, str], str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        spec, _, image = case.get("name", "").partition("[")
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                key = (spec, image.rstrip("]"))
                found[key] = found.get(key, "") + (node.get("message") or "") + (node.text or "")
    return found


#: a failure that is a crash of the spec, not its verdict (an AssertionError or pytest.fail is)
CRASH = re.compile(r"^(?!AssertionError)[A-Za-z_.]*(Error|Exception)\b")


def crashed(junit: Path) -> set[tuple[str, str]]:
    """(spec, case id) whose failure is a crash (TypeError, KeyError, ...): no catch."""
    found: set[tuple[str, str]] = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        spec, _, image = case.get("name", "").partition("[")
        for node in case.findall("failure"):
            if CRASH.match(node.get("message") or ""):
                found.add((spec, image.rstrip("]")))
    return found
