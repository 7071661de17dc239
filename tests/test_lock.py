"""One hash-locked dependency set (requirements.lock) that README's set-up, CI and the workflow
all install from, through bin/setup-host: a changed or substituted package cannot slip in."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from suitcase.config import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's `name==version \\ --hash=...` entries."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)(.*)$", line)
        assert match, f"not a pinned requirement: {line[:80]}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", match.group(3))
        entries[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return entries


def test_every_locked_package_is_pinned_with_hashes() -> None:
    locked = _locked()
    assert len(locked) > 50
    assert [name for name, (_v, hashes) in locked.items() if not hashes] == []
    assert "://" not in LOCK.read_text()  # no index or mirror named: taken from pip's config
    assert "--find-links" not in LOCK.read_text()


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    declared = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
        *project["build-system"]["requires"],
    ]
    locked = _locked()
    problems = []
    for spec in declared:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{name}: not in requirements.lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{name}: locked {locked[name][0]}, pyproject wants {spec}")
    assert problems == [], "regenerate requirements.lock (its header has the command)"


def test_this_environment_was_installed_from_the_lock() -> None:
    """CI runs in the virtualenv bin/setup-host made: every locked package is there at its
    locked version, and setup-host installs with --require-hashes from the lock alone."""
    locked = _locked()
    wrong = {}
    for name, (version, _hashes) in locked.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have != version:
            wrong[name] = (version, have)
    assert wrong == {}
    setup = (PROJECT_ROOT / "bin" / "setup-host").read_text()
    assert "pip install -q --require-hashes -r requirements.lock" in setup
    assert "--no-deps --no-build-isolation -e ." in setup
    assert "pip install -q -e" not in setup and "--upgrade pip" not in setup
