"""Fixes to moto's models, applied inside the embedded endpoint process at start.

Where moto answers unlike AWS for something Suitcase relies on, fix it *here*, so Suitcase's
client code is the same for AWS and for the endpoint (DESIGN: "The embedded default"). Each fix
is a function that patches one moto model, registered in FIXES with the AWS rule it follows, and
has a test over HTTP against a real endpoint process that states that rule.

Known gaps for the AMI work (issue 10) to fix here: RegisterImage keeps only Name and
Description; EBS reports a BlockSize of 512 (AWS: 524,288); ListSnapshotBlocks is unsorted and
unpaged; a snapshot used by an AMI can be deleted.

Persistence (pickling bodies beside the state) is not a fidelity fix: it lives in
`suitcase.aws.endpoint_state`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: (name, the AWS rule it follows, the function that patches moto). Applied in order, once, at
#: start; a fix of a service's models wraps its patch in `after_import("moto.ec2.models", ...)`.
FIXES: list[tuple[str, str, Callable[[], None]]] = []

_installed: list[str] = []


_after: dict[str, list[Callable[[ModuleType], None]]] = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs hooks right after a moto module is first imported: moto imports a service only on
    its first request, and importing them all at start would cost seconds and 100 MB."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _after:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader: Any = spec.loader
        exec_module = loader.exec_module

        def exec_then_hook(module: ModuleType) -> None:
            exec_module(module)
            for hook in _after.pop(fullname, []):
                hook(module)

        loader.exec_module = exec_then_hook
        return spec


def after_import(module: str, hook: Callable[[ModuleType], None]) -> None:
    """Call `hook(module)` once `module` is imported (now, if it already is)."""
    if module in sys.modules:
        hook(sys.modules[module])
        return
    _after.setdefault(module, []).append(hook)
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


def fix(name: str, rule: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a model fix: `@fix("ebs-block-size", "EBS direct APIs use 524,288-byte blocks")`."""

    def register(patch: Callable[[], None]) -> Callable[[], None]:
        FIXES.append((name, rule, patch))
        return patch

    return register


def install() -> list[str]:
    """Apply every registered fix (idempotent); returns the names applied, for the log."""
    for name, _rule, patch in FIXES:
        if name not in _installed:
            patch()
            _installed.append(name)
    return list(_installed)
