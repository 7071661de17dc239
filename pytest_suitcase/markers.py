"""Marker arguments are checked at collection: a typo must be an error, never a silent skip."""

from __future__ import annotations

import re

import pytest

from suitcase.imagetypes import IMAGE_TYPES

# debian, el, and either with a major release, optionally "and later": el6, el8+, debian12
FAMILY = re.compile(r"^(debian|el)(\d+\+?)?$")


def _bad_images(args: tuple[object, ...]) -> list[str]:
    return [repr(a) for a in args if not isinstance(a, str) or a not in IMAGE_TYPES]


def _bad_families(args: tuple[object, ...]) -> list[str]:
    return [repr(a) for a in args if not isinstance(a, str) or not FAMILY.match(a)]


#: what `suitcase_needs` may name (pytest_suitcase.plugin.lacks decides it per OS template)
CAPABILITIES = ("cloud-init", "ena")


def _bad_capabilities(args: tuple[object, ...]) -> list[str]:
    return [repr(a) for a in args if a not in CAPABILITIES]


CHECKS = {
    "suitcase_images": (_bad_images, f"image types are {', '.join(IMAGE_TYPES)}"),
    "suitcase_family": (_bad_families, "families are debian, el, el6, el7, el8+, el9, ..."),
    "suitcase_needs": (_bad_capabilities, f"capabilities are {', '.join(CAPABILITIES)}"),
}


def validate(items: list[pytest.Item]) -> None:
    """Raise a usage error naming the spec file and the bad argument of the first bad marker."""
    seen: set[tuple[str, str]] = set()
    for item in items:
        for name, (bad_args, hint) in CHECKS.items():
            for marker in item.iter_markers(name):
                where = str(item.path)
                if (where, repr(marker.args)) in seen:
                    continue
                seen.add((where, repr(marker.args)))
                bad = bad_args(marker.args) if marker.args else ["(none)"]
                if bad or marker.kwargs:
                    what = ", ".join(bad) or f"keyword arguments {sorted(marker.kwargs)}"
                    raise pytest.UsageError(
                        f"{where}: {item.name}: unknown argument {what} to @pytest.mark.{name}; "
                        f"{hint} (a typo would silently skip the spec)"
                    )
