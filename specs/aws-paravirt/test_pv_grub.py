"""Paravirtual boot: PV-GRUB reads /boot/grub/menu.lst from a single-partition disk."""

from pytest_suitcase import facts

GRUB = "/boot/grub/grub.conf"


def test_menu_lst_links_to_grub_conf(host):
    """PV-GRUB reads menu.lst; the original kept one file and linked the other to it."""
    menu = host.file("/boot/grub/menu.lst")
    assert menu.is_symlink
    assert menu.linked_to.endswith("grub.conf")


def test_root_hd0(host):
    """The paravirt disk has no partition table: GRUB's root is the whole disk, (hd0)."""
    text = facts.read_required(host, GRUB)
    assert any(line.split() == ["root", "(hd0)"] for line in text.splitlines())


def test_console_hvc0(host):
    """Xen PV guests speak on hvc0; any other console shows nothing."""
    lines = facts.kernel_lines(host, GRUB)
    assert lines and all("console=hvc0" in line for line in lines)


def test_kernel_and_initrd_exist(host):
    """A menu entry pointing at a missing kernel cannot boot."""
    named = [
        words[:2]
        for words in map(str.split, facts.read_required(host, GRUB).splitlines())
        if words and words[0] in ("kernel", "initrd")
    ]
    assert {kind for kind, *_ in named} == {"kernel", "initrd"}, f"{GRUB} entries: {named}"
    for kind, *path in named:
        assert path and facts.exists(host, path[0]), f"{kind} {path} does not exist"
