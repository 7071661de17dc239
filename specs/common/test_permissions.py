"""Permissions: system trees are writable by root alone."""

from pytest_suitcase import facts

TREES = ("/etc", "/usr", "/boot")


def test_nothing_world_writable_in_system_trees(image):
    """A world-writable file under /etc, /usr or /boot lets any local user become root."""
    for tree in TREES:
        found = facts.world_writable(image, tree)
        assert found == [], f"world-writable under {tree}: {found[:10]}"
