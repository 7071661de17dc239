"""Boot correctness: boot loader, fstab and the file system agree on which file system is root."""

from pytest_suitcase import facts


def test_kernel_root_is_the_root_filesystem(image):
    """Every entry's root= is a LABEL/UUID, and the root file system's real one: a device name
    changes across platforms (vda, xvda, nvme0n1) and a stale UUID panics at boot."""
    ids = facts.root_filesystem_ids(image)
    assert ids, "the root file system has neither UUID nor LABEL"
    for config, lines in facts.all_kernel_lines(image).items():
        for line in lines:
            root = facts.kernel_root(line)
            assert root is not None, f"{config}: a kernel line without root=: {line}"
            assert facts.names_root(root, ids), (
                f"{config}: root={root} is not the root file system {ids}"
            )


def test_fstab_root_is_the_root_filesystem(image):
    """fstab's / must name the file system that really is root, by LABEL or UUID."""
    entry = facts.fstab_entry(image, "/")
    assert entry is not None, "/etc/fstab mounts nothing at /"
    ids = facts.root_filesystem_ids(image)
    assert facts.names_root(entry[0], ids), f"fstab's / is {entry[0]}, the root file system {ids}"
