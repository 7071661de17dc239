"""Offline specs never read the build host (issue 21, item 7).

Offline, `host` and `image` are the mounted image, whose commands run in a sandbox with no /proc
and no /sys and a /dev of bubblewrap's own: a spec that reads /proc, /sys or /dev, runs a command
itself or asks testinfra for runtime state (interfaces, sockets, processes, sysctls, mounts) learns
nothing about the image, or something about the machine that built it. Such a spec needs the
running system and must carry `suitcase_booted` (skipped offline). Specs read files and run the
image's tools only through pytest_suitcase.facts, whose helpers fail on an error instead of
answering from an empty output.

Read statically from the spec files (ast): each test function with the module-level helpers it
calls and the module-level constants it names.
"""

from __future__ import annotations

import ast

import pytest

from suitcase.config import PROJECT_ROOT
from tests.spec_names import _marks, _module_marks

SPECS = PROJECT_ROOT / "specs"
RUNTIME_PATHS = ("/proc", "/sys", "/dev")
# calls that run a command (testinfra, subprocess, os) or read runtime state through testinfra
COMMANDS = {
    "run",
    "run_test",
    "run_expect",
    "check_output",
    "run_as_login_user",
    "Popen",
    "call",
    "check_call",
    "getoutput",
    "getstatusoutput",
    "system",
    "popen",
    "interface",
    "socket",
    "process",
    "sysctl",
    "mount_point",
    "iptables",
    "ip6tables",
    "addr",
    "blockdevice",
    "supervisor",
    "podman",
    "docker",
}
RUNTIME_ATTRIBUTES = {"is_running", "listening", "pid"}
MODULES = {"subprocess", "os", "pty", "shutil"}


def _runtime_path(text: str) -> bool:
    return any(
        word == root or word.startswith(root + "/")
        for word in text.replace("'", " ").replace('"', " ").split()
        for root in RUNTIME_PATHS
    )


def problems_in(node: ast.AST) -> list[str]:
    """What in `node` reads the build host or runtime state."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if _runtime_path(sub.value):
                found.append(f"reads {sub.value!r}")
        elif isinstance(sub, ast.Call):
            func = sub.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if name in COMMANDS:
                found.append(f"calls {name}()")
        elif isinstance(sub, ast.Attribute) and sub.attr in RUNTIME_ATTRIBUTES:
            found.append(f"reads .{sub.attr}")
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            names = [a.name for a in sub.names]
            module = getattr(sub, "module", None)
            if module in MODULES or any(n.split(".")[0] in MODULES for n in names):
                found.append(f"imports {module or names}")
    return found


def offline_violations(source: str) -> dict[str, list[str]]:
    """{test function: problems} for the functions of a spec module without suitcase_booted."""
    tree = ast.parse(source)
    module_marks = _module_marks(tree)
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    constants = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    module_problems = [
        p for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom) for p in problems_in(n)
    ]
    found = {}
    for name, function in helpers.items():
        if not name.startswith("test_"):
            continue
        marks = {**module_marks, **_marks(function.decorator_list)}
        # AMI specs read EC2's description of the AMI (device names such as /dev/xvda are its
        # words) and never the image host
        if "suitcase_booted" in marks or "suitcase_ami" in marks:
            continue
        seen: set[str] = set()
        todo = [function]
        problems = list(module_problems)
        while todo:
            node = todo.pop()
            problems += problems_in(node)
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and sub.id not in seen:
                    seen.add(sub.id)
                    if sub.id in helpers and sub.id != name:
                        todo.append(helpers[sub.id])
                    elif sub.id in constants:
                        problems += problems_in(constants[sub.id])
        if problems:
            found[name] = sorted(set(problems))
    return found


def test_no_offline_spec_reads_the_build_host() -> None:
    files = sorted(SPECS.rglob("test_*.py"))
    assert len(files) > 10, f"spec files not found under {SPECS}"
    bad = {
        f"{path.relative_to(SPECS)}::{name}": problems
        for path in files
        for name, problems in offline_violations(path.read_text()).items()
    }
    assert bad == {}, (
        "specs that read /proc, /sys, /dev or run a command without @pytest.mark.suitcase_booted "
        f"(offline they would see the build host or nothing): {bad}"
    )


@pytest.mark.parametrize(
    ("body", "caught"),
    [
        ('def test_x(host):\n    assert host.run("uname -r").rc == 0\n', True),
        ('def test_x(host):\n    assert host.check_output("ls /etc")\n', True),
        ('def test_x(image):\n    assert image.file("/proc/cmdline").exists\n', True),
        (
            'def test_x(image):\n    assert facts.read(image, "/sys/class/net/eth0/operstate")\n',
            True,
        ),
        ("import subprocess\ndef test_x():\n    subprocess.run(['true'])\n", True),
        ('def test_x(host):\n    assert host.interface("eth0").exists\n', True),
        ('def test_x(host):\n    assert host.service("ssh").is_running\n', True),
        ('CMD = "/dev/vda"\ndef test_x(image):\n    assert facts.exists(image, CMD)\n', True),
        (
            'def helper(host):\n    return host.run("id")\n'
            "def test_x(host):\n    assert helper(host)\n",
            True,
        ),
        (
            "import pytest\n@pytest.mark.suitcase_booted\n"
            'def test_x(host):\n    assert host.run("uname -r").rc == 0\n',
            False,
        ),
        (
            'import pytest\npytestmark = pytest.mark.suitcase_ami\nROOT = "/dev/xvda"\n'
            "def test_x(suitcase_ami):\n    assert suitcase_ami.description[ROOT]\n",
            False,
        ),
        (
            "import pytest\npytestmark = pytest.mark.suitcase_booted\n"
            'def test_x(host):\n    assert host.file("/proc/cmdline").exists\n',
            False,
        ),
        ('def test_x(image):\n    assert facts.read(image, "/etc/devices.conf") is None\n', False),
        ('def test_x(image):\n    assert image.service("ssh").is_enabled\n', False),
    ],
)
def test_the_check_sees_what_it_looks_for(body: str, caught: bool) -> None:
    assert bool(offline_violations(body)) == caught, offline_violations(body)
