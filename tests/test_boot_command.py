"""The boot command Packer types, played against each ISO's boot loader menu (ISOLINUX)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from suitcase.answerfile import boot_command
from suitcase.config import Paths
from suitcase.ostemplate import list_os, load_os

EL = [n for n in list_os(Paths.default()) if load_os(n).family == "el"]
MENUS = Path(__file__).parent / "data" / "isolinux"


@dataclass
class Entry:
    label: str
    append: str
    default: bool = False


def top_menu(text: str) -> list[Entry]:
    """The entries ISOLINUX shows first (a `menu begin` submenu is one line, not its entries)."""
    entries: list[Entry] = []
    depth = 0
    for raw in text.splitlines():
        words = raw.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        key, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
        if key == "menu" and rest.startswith("begin"):
            depth += 1
            entries.append(Entry("submenu", ""))
        elif key == "menu" and rest.startswith("end"):
            depth -= 1
        elif depth:
            continue
        elif key == "label":
            entries.append(Entry(rest.strip(), ""))
        elif key == "menu" and rest.strip() == "default" and entries:
            entries[-1].default = True
        elif key == "append" and entries:
            entries[-1].append = rest.strip()
    return entries


def play(entries: list[Entry], keys: str) -> tuple[Entry, str]:
    """Move through the menu as the keys say; <tab> opens the selected entry's line to edit."""
    index = next((i for i, e in enumerate(entries) if e.default), 0)
    for key in re.findall(r"<[^>]+>", keys):
        if key == "<up>":
            index = max(0, index - 1)
        elif key == "<down>":
            index = min(len(entries) - 1, index + 1)
        elif key == "<tab>":
            return entries[index], entries[index].append
        elif not key.startswith("<wait"):
            pytest.fail(f"{key} is not a key the boot menu handles here")
    pytest.fail("the boot command never opens an entry with <tab>")


@pytest.mark.parametrize("name", EL)
def test_boot_command_edits_the_install_entry(name: str) -> None:
    tpl = load_os(name)
    entry = boot_command(tpl, Paths.default())
    menu = top_menu((MENUS / f"{tpl.answer_file}.cfg").read_text())
    chosen, line = play(menu, entry["keys"])
    assert chosen.label == "linux", f"{name}: the keys select '{chosen.label}', not Install"
    assert "rd.live.check" not in line  # checking a 1-10 GB medium under TCG takes ages
    # what the installer's kernel then gets: the entry's own line (stage2), plus ours
    typed = f"{line} {entry['args']} {entry['ks_arg']}=http://10.0.2.2:8000/ks.cfg"
    if tpl.major >= 7:
        assert "inst.stage2=" in typed, "the entry's line must be kept, not replaced"
    assert f" {entry['ks_arg']}=http://" in typed


def test_the_old_el7_keys_would_test_the_medium_instead() -> None:
    menu = top_menu((MENUS / "el7.cfg").read_text())
    chosen, _line = play(menu, "<tab>")  # no <up>: stays on the default entry
    assert chosen.label == "check"
