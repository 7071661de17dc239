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

from collections.abc import Callable

#: (name, the AWS rule it follows, the function that patches moto). Applied in order, once.
FIXES: list[tuple[str, str, Callable[[], None]]] = []

_installed: list[str] = []


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
