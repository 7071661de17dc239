"""The hook that lets fixes to moto's models wait until moto imports a service (in-process:
it is plain import machinery; the fixes themselves are tested over HTTP)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from suitcase.aws.endpoint_models import after_import


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "fakemoto_pkg"
    (package / "svc").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "svc" / "__init__.py").write_text("")
    (package / "svc" / "models.py").write_text("class Thing:\n    size = 512\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakemoto_pkg.svc.models"
    for name in [m for m in sys.modules if m.startswith("fakemoto_pkg")]:
        del sys.modules[name]


def test_hook_runs_when_the_module_is_first_imported(fake_package: str) -> None:
    seen: list[str] = []

    def patch(module: ModuleType) -> None:
        seen.append(module.__name__)
        module.Thing.size = 524288  # what a fix does: change a model before anyone uses it

    after_import(fake_package, patch)
    assert seen == [] and fake_package not in sys.modules  # nothing imported eagerly
    from fakemoto_pkg.svc.models import Thing  # type: ignore[import-not-found]

    assert seen == [fake_package] and Thing.size == 524288
    after_import(fake_package, lambda module: seen.append("again"))  # already imported: now
    assert seen == [fake_package, "again"]


def test_registered_fixes_are_applied_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from suitcase.aws import endpoint_models

    monkeypatch.setattr(endpoint_models, "FIXES", [])
    monkeypatch.setattr(endpoint_models, "_installed", [])
    calls: list[int] = []

    @endpoint_models.fix("test-fix", "a rule of AWS")
    def patch() -> None:
        calls.append(1)

    assert endpoint_models.install() == ["test-fix"]
    assert endpoint_models.install() == ["test-fix"] and calls == [1]
