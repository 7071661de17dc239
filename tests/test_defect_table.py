"""The defect table (tests/slow/defects.py) covers every spec, statically: no image needed.

The slow defect suite proves each row is caught; these checks keep the table honest between
its runs: every Debian spec has a defect, every row names specs that run on its image, and no
two rows verified in the same copy rely on the same spec.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from suitcase.imagetypes import IMAGE_TYPES
from tests.slow.copies import rerecord
from tests.slow.defect_images import Kit, _repack_box
from tests.slow.defects import DEFECTS, PARITY
from tests.spec_names import debian_specs, specs

#: specs other branches add, named by the table before they arrive (issue 11's contract):
#: the table may name them; once they exist they are checked like every other spec
ANNOUNCED = {"test_box_metadata": "specs/vagrant/test_box.py (the ships branch)"}


def test_every_debian_spec_is_failed_by_a_planted_defect() -> None:
    planted = {spec for d in DEFECTS.values() for spec in d.specs}
    missing = sorted(set(debian_specs()) - planted)
    assert missing == [], f"specs no planted defect fails (add a row to DEFECTS): {missing}"


def test_every_row_names_specs_that_run_on_its_image() -> None:
    known = debian_specs()
    for name, defect in DEFECTS.items():
        assert defect.specs, name
        assert defect.image in IMAGE_TYPES, name
        assert defect.mode in ("auto", "offline") and defect.target in ("disk", "box", "vmdk"), name
        assert defect.target == "disk" or any(
            defect.target in output.split() for output in IMAGE_TYPES[defect.image].outputs
        ), name
        for spec in defect.specs:
            if spec in ANNOUNCED and spec not in known:
                continue
            assert spec in known, f"{name}: no Debian spec {spec}"
            assert defect.image in known[spec].images, (
                f"{name}: {spec} never runs on {defect.image}"
            )
            if known[spec].booted:  # a booted spec is skipped offline: it could never fail there
                assert defect.mode == "auto", f"{name}: {spec} needs a boot"
                assert IMAGE_TYPES[defect.image].verification == "boot", name


def test_rows_verified_together_never_share_a_spec() -> None:
    """Else one row's failure could hide that the other was never caught."""
    groups: Counter[tuple[str, str, str]] = Counter(
        (d.image, d.mode, spec) for d in DEFECTS.values() for spec in d.specs
    )
    shared = sorted(key for key, count in groups.items() if count > 1)
    assert shared == [], shared


def test_spec_names_are_unique() -> None:
    """The table names specs by function name: two specs of one name would be ambiguous."""
    names = Counter(s.name for s in specs() if not s.ami)
    assert [n for n, c in names.items() if c > 1] == []
    assert PARITY in names


def test_the_table_spans_every_image_type_and_defect_class() -> None:
    assert len(DEFECTS) >= 30
    assert {d.image for d in DEFECTS.values()} == set(IMAGE_TYPES)
    assert {d.mode for d in DEFECTS.values() if d.image != "aws-paravirt"} == {"auto", "offline"}
    assert len({d.inject for d in DEFECTS.values()}) > 40  # different defects, not one repeated


def test_repacked_box_carries_the_new_disk_and_the_manifest_its_checksums(tmp_path: Path) -> None:
    """The box pipeline on a tiny box: box.img replaced, box injection applied, manifest and
    catalog re-checksummed, the original files (hard links) never written."""
    import json
    import os
    import tarfile

    from suitcase.manifest import sha256_file

    stage = tmp_path / "stage"
    stage.mkdir()
    old_disk, new_disk = tmp_path / "old.img", stage / "disk.qcow2"
    old_disk.write_bytes(b"old disk")
    new_disk.write_bytes(b"new disk with a defect")
    (tmp_path / "metadata.json").write_text('{"provider": "libvirt", "format": "qcow2"}\n')
    box = stage / "x.box"
    with tarfile.open(box, "w") as tar:
        tar.add(tmp_path / "metadata.json", arcname="metadata.json")
        tar.add(old_disk, arcname="box.img")
    original = tmp_path / "original.box"
    os.link(box, original)
    (stage / "catalog.json").write_text(
        json.dumps({"versions": [{"providers": [{"checksum": "0" * 64}]}]})
    )
    outputs = [
        {"kind": "box", "path": "x.box", "size": 1, "sha256": "0" * 64},
        {"kind": "disk", "path": "disk.qcow2", "size": 1, "sha256": "0" * 64},
        {"kind": "box-catalog", "path": "catalog.json", "size": 1, "sha256": "0" * 64},
    ]
    (stage / "manifest.json").write_text(json.dumps({"outputs": outputs}))

    _repack_box(box, new_disk, [DEFECTS["vagrant-box-wrong-provider"].inject], Kit("k"))
    rerecord(stage, {"x.box", "disk.qcow2"})

    with tarfile.open(box) as tar:
        assert tar.getnames() == ["metadata.json", "box.img"]
        assert tar.extractfile("box.img").read() == b"new disk with a defect"  # type: ignore[union-attr]
        assert b'"virtualbox"' in tar.extractfile("metadata.json").read()  # type: ignore[union-attr]
    with tarfile.open(original) as tar:  # the hard link still holds the box as built
        assert tar.extractfile("box.img").read() == b"old disk"  # type: ignore[union-attr]
    recorded = {o["path"]: o for o in json.loads((stage / "manifest.json").read_text())["outputs"]}
    for path in ("x.box", "disk.qcow2", "catalog.json"):
        assert recorded[path]["sha256"] == sha256_file(stage / path), path
        assert recorded[path]["size"] == (stage / path).stat().st_size, path
    catalog = json.loads((stage / "catalog.json").read_text())
    assert catalog["versions"][0]["providers"][0]["checksum"] == sha256_file(box)
