"""The box as `vagrant box add` installs it: what vagrant-libvirt reads before it boots box.img."""

from suitcase.verified import box_problems


def test_box_metadata(suitcase_box):
    """vagrant-libvirt needs provider libvirt, format qcow2 and box.img's size in GiB."""
    assert box_problems(suitcase_box) == []
