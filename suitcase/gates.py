"""What a passed verification is worth: the gates that `all` and `register` go through.

- Modes have a strength. A booted run (QEMU + SSH) sees what an offline run (the image mounted)
  sees and the running system besides; an image type that is only ever verified offline
  (aws-paravirt: no PV boot here) reaches "offline" whatever mode is asked for.
- A skip is *planned* when the plugin decided it from the spec files before anything ran (a
  spec for another family, a booted spec in an offline run, an AMI spec with nothing to
  register); its reason starts with `PLANNED`. Any other skip means a spec that was expected to
  check something did not: such a run has not passed.
- `verification_problem`: why a stage's recorded verification does not let it be registered
  (None when it does). The record is the manifest's `verification` entry, written by the
  plugin after the run; it must be a pass of the whole spec tree (no -k, -m, file selection),
  for this stage key, of the file that ships as it is now, in a mode the site accepts.
"""

from __future__ import annotations

from typing import Any

from suitcase.imagetypes import IMAGE_TYPES

#: weakest first
STRENGTH = ("offline", "boot")
#: the start of every skip reason the plugin decides from the spec files (a planned skip)
PLANNED = "planned: "


def reached(image: str, mode: str) -> str:
    """The verification an `image` gets in `mode` (auto/offline): "boot" or "offline"."""
    kind = IMAGE_TYPES[image]
    return "offline" if mode == "offline" or kind.verification == "offline" else "boot"


def at_least(had: str, wanted: str) -> bool:
    """A verification that reached `had` satisfies one that must reach `wanted`."""
    if had not in STRENGTH:
        return False
    return STRENGTH.index(had) >= STRENGTH.index(wanted)


def required(image: str, site_minimum: str) -> str:
    """What `image` must reach to be registered: the site's minimum, or the strongest its
    image type can reach here when that is weaker (aws-paravirt is verified offline)."""
    best = reached(image, "auto")
    return site_minimum if at_least(best, site_minimum) else best


def planned(reason: str) -> bool:
    """A skip reason the plugin decided from the spec files (pytest may prefix 'Skipped: ')."""
    return reason.removeprefix("Skipped: ").startswith(PLANNED)


def verification_problem(
    image: str, key: str, shipped_sha256: str | None, record: Any, site_minimum: str
) -> str | None:
    """Why the verification `record` (a manifest's `verification` entry) does not let stage
    `key` of `image` be registered; None when it does. `shipped_sha256`: the sha256 the
    manifest records for the output that ships."""
    if not isinstance(record, dict):
        return "never verified"
    if record.get("source", "artifact") != "artifact":
        return "only its AMI was verified, not the built image"
    if record.get("key") != key:
        return "verified as another build of the stage (stage key differs)"
    verified = record.get("file") or {}
    if not isinstance(verified, dict) or verified.get("sha256") is None:
        return "its file did not match its manifest when verified"
    if shipped_sha256 is not None and verified.get("sha256") != shipped_sha256:
        return "the file verified is not the one that ships"
    if not record.get("complete"):
        return "only part of the specs ran (-k, -m or a file selection)"
    if not record.get("passed"):
        return "its last verification did not pass"
    wanted = required(image, site_minimum)
    if not at_least(str(record.get("reached", "")), wanted):
        return (
            f"verified {record.get('reached') or 'in an unknown mode'}; the site's "
            f"register_requires asks for {wanted}"
        )
    return None
