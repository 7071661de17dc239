"""Planted secrets never leave a run: real Packer, real failing tools, a guest console, the CLI.

Each test plants the same set (a value with commas, one with spaces inside quotes, the build key,
a stray private key, an AWS secret shown URL-encoded, a session token, a root password hash, a
build secret shown base64-encoded with a user name as curl's Basic header and docker's `auth`
hold it, and in hex), runs the real thing, then scans every file the run wrote, what it printed
and the error it raised for each secret, each of its pieces and its encodings. Modes of logs and
consoles must be 0600.
Only APIs that predate suitcase.redact are used, so each test also runs against older code.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import re
import shutil
import string
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from suitcase import packer
from suitcase.build import _console_tail
from suitcase.command import run
from suitcase.config import PROJECT_ROOT
from suitcase.errors import BuildError, ToolError
from suitcase.keys import ensure_key_pair
from suitcase.machine import console_lines
from tests.test_plugin import ARGS, _specs

pytest_plugins = ["pytester"]

BASE64 = string.ascii_letters + string.digits + "/+"
CRYPT = string.ascii_letters + string.digits + "./"


def _random(alphabet: str, length: int) -> str:
    return "".join(random.choice(alphabet) for _ in range(length))


@dataclass
class Planted:
    comma: str  # a sensitive Packer value (by its name) with commas and a space
    declared: str  # sensitive only because the template declares it so
    spaced: str  # inside password="...": only the pattern can know it
    build_key: str  # the build set's private key (multi-line)
    stray_key: str  # a private key nobody told Suitcase about (multi-line)
    aws: str  # AWS_SECRET_ACCESS_KEY, shown URL-encoded
    token: str  # AWS_SESSION_TOKEN
    root_hash: str  # a root password hash, as /etc/shadow holds it
    registry: str  # a build secret (SUITCASE_SECRET_REGISTRY), shown base64 and hex

    def named(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items()}


def pieces(secret: str) -> set[str]:
    """The secret, its URL-encoded form, every piece of it long enough to be recognisable, and
    its encodings."""
    body = re.sub(r"-----(BEGIN|END) [A-Z ]+-----", " ", secret)
    parts = {p for p in re.split(r"[\s,$/+=]+|%2[BFbf]", body) if len(p) >= 6}
    return {secret.strip(), urllib.parse.quote(secret, safe=""), *parts, *encodings(secret)}


def encodings(secret: str) -> set[str]:
    """The secret in hex, and what shows of its base64 inside longer text, at each alignment."""
    data = secret.strip().encode()
    found = {data.hex(), data.hex().upper()}
    for offset in range(3):
        # neighbours that differ in every bit: the characters both encodings share are the secret's
        low = base64.b64encode(b"\0" * offset + data + b"\0\0").decode()
        high = base64.b64encode(b"\xff" * offset + data + b"\xff\xff").decode()
        shared = "".join(a if a == b else " " for a, b in zip(low, high, strict=True))
        found.add(max(shared.split(), key=len))
    return found


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(text: str, planted: Planted) -> list[str]:
    """Which secrets show (named, never the value: a failing test must not leak them either)."""
    found = []
    for name, secret in planted.named().items():
        hits = sum(1 for piece in pieces(secret) if piece in text)
        if hits:
            found.append(f"{name} ({hits} piece(s))")
    return found


def scan_tree(root: Path, planted: Planted, skip: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            hit = leaks(path.read_bytes().decode("utf-8", "replace"), planted)
            if hit:
                found[str(path.relative_to(root))] = hit
    return found


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


@functools.cache
def _stray_key() -> bytes:
    """An RSA key in the traditional PEM format (made once: RSA key generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Planted:
    keys = ensure_key_pair(tmp_path / "keys", "suitcase-build-test")
    stray = _stray_key()
    aws = _random(BASE64, 17) + "/" + _random(BASE64, 11) + "+" + _random(BASE64, 11)
    token = _random(BASE64, 60) + "/" + _random(BASE64, 59) + "=="
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    registry = "Reg" + _random(string.ascii_letters + string.digits, 29)
    monkeypatch.setenv("SUITCASE_SECRET_REGISTRY", registry)  # masked from when it is read
    return Planted(
        comma=f"Cma{_random(string.ascii_letters, 8)},Cmb{_random(string.ascii_letters, 8)}"
        f",Cmc {_random(string.ascii_letters, 8)}",
        declared=f"Dpa{_random(string.ascii_letters, 8)},Dpb {_random(string.ascii_letters, 8)}",
        spaced=" ".join(f"Sp{n}{_random(string.ascii_letters, 8)}" for n in "abc"),
        build_key=keys.private.read_text(),
        stray_key=stray.decode(),
        aws=aws,
        token=token,
        root_hash=f"$6${_random(CRYPT, 16)}${_random(CRYPT, 86)}",
        registry=registry,
    )


def docker_config(user: str, token: str) -> str:
    """~/.docker/config.json after `docker login`: the auth is base64 of `user:token`."""
    return json.dumps({"auths": {"registry.example.com": {"auth": b64(f"{user}:{token}")}}})


def console_text(p: Planted) -> str:
    """What a guest might print on its serial console (CRLF, colour codes and all)."""
    lines = [
        "\x1b[0;32m[  OK  ]\x1b[0m Started ssh.service",
        f"root:{p.root_hash}:19000:0:99999:7:::",
        f'export password="{p.spaced}"',
        f"AWS_SECRET_ACCESS_KEY={urllib.parse.quote(p.aws, safe='')}",
        f"aws_secret_access_key {p.aws}",
        *p.build_key.splitlines(),
        f"db_secret={p.comma}",
        *p.stray_key.splitlines(),
        f"> Authorization: Basic {b64('deploy:' + p.registry)}",  # curl -v -u deploy:$TOKEN
        docker_config("ci-robot", p.registry),
        f"token as hex: {p.registry.encode().hex()}",
    ]
    return "\r\n".join(lines) + "\r\n"


def test_a_packer_build_leaks_nothing(planted: Planted, tmp_path: Path) -> None:
    """Sensitive values echoed by a real `packer build` (shell-local), decoded and multi-line."""
    given, out = tmp_path / "input", tmp_path / "run"
    given.mkdir()
    out.mkdir()
    (given / "stray.pem").write_text(planted.stray_key)
    (given / "console.txt").write_text(console_text(planted))
    names = [
        "vault_secret",
        "deploy_phrase",
        "note",
        "ssh_private_key_file",
        "stray_key_file",
        "aws_url",
        "shadow_line",
        "serial_log",
        "console_text",
    ]
    body = {
        "variables": {name: "" for name in names},
        "sensitive-variables": ["deploy_phrase"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [
            {
                "type": "shell-local",
                "inline": [
                    "echo 'vault={{user `vault_secret`}}'",
                    "echo 'phrase: {{user `deploy_phrase`}}'",
                    "echo '{{user `note`}}'",
                    "cat '{{user `ssh_private_key_file`}}'",
                    "cat '{{user `stray_key_file`}}'",
                    "echo 'fetching {{user `aws_url`}}'",
                    'echo "env: $AWS_SECRET_ACCESS_KEY $AWS_SESSION_TOKEN"',
                    "echo '{{user `shadow_line`}}'",
                    # the guest console as QEMU would write it, raw
                    "cat '{{user `console_text`}}' >> '{{user `serial_log`}}'",
                    "echo 'giving up on {{user `vault_secret`}}' >&2",
                    "cat '{{user `ssh_private_key_file`}}' >&2",
                    "exit 1",
                ],
            }
        ],
    }
    template = given / "t.json"
    template.write_text(json.dumps(body))
    keys = tmp_path / "keys" / "id_ed25519"
    variables: dict[str, object] = {
        "vault_secret": planted.comma,
        "deploy_phrase": planted.declared,
        "note": f'password="{planted.spaced}"',
        "ssh_private_key_file": str(keys),
        "stray_key_file": str(given / "stray.pem"),
        "aws_url": "s3://bucket/key?sig=" + urllib.parse.quote(planted.aws, safe=""),
        "shadow_line": f"root:{planted.root_hash}:19000:0:99999:7:::",
        "serial_log": str(out / "console.log"),
        "console_text": str(given / "console.txt"),
    }
    messages: list[str] = []
    with pytest.raises(BuildError) as failure:
        packer.build(
            template,
            variables,
            workdir=out,
            log=out / "build.log",
            on_message=messages.append,
        )
    log = (out / "build.log").read_text()
    assert "vault=" in log and "phrase: " in log and "fetching s3://bucket/key?sig=" in log
    assert "Started ssh.service" in (out / "console.log").read_text()  # scrubbed, not emptied
    problems: dict[str, object] = {
        **scan_tree(out, planted),
        "screen": leaks("\n".join(messages), planted),
        "error": leaks(str(failure.value), planted),
        "build.log mode": mode(out / "build.log"),
        "console.log mode": mode(out / "console.log"),
    }
    assert problems == {
        "screen": [],
        "error": [],
        "build.log mode": "0o600",
        "console.log mode": "0o600",
    }


STDERR_ENDINGS = {
    "comma, known": lambda p: f"retrying with {p.comma}",
    "comma, assigned": lambda p: f"vault_secret={p.comma}",
    "spaces in quotes": lambda p: f'password="{p.spaced}" rejected',
    "build key": lambda p: p.build_key,
    "stray key, BEGIN cut off": lambda p: p.stray_key,
    "url-encoded AWS secret": lambda p: "GET /?s=" + urllib.parse.quote(p.aws, safe="") + " 403",
    "session token": lambda p: f"using {p.token}",
    "root password hash": lambda p: f"root:{p.root_hash}:19000:0:99999:7:::",
    "curl's Basic header": lambda p: f"> Authorization: Basic {b64('deploy:' + p.registry)}",
    "docker config auth": lambda p: "read " + docker_config("pull", p.registry),
    "hex, upper case": lambda p: f"token {p.registry.encode().hex().upper()} refused",
}


@pytest.mark.parametrize("ending", STDERR_ENDINGS, ids=list(STDERR_ENDINGS))
def test_a_failed_tool_error_leaks_nothing(planted: Planted, tmp_path: Path, ending: str) -> None:
    """A failing run() quotes its last stderr lines: redacted, even a key whose BEGIN is cut off."""
    # a build of this set is under way: its Packer values and key are known to the process
    packer.redactor_for(
        {
            "vault_secret": planted.comma,
            "ssh_private_key_file": str(tmp_path / "keys" / "id_ed25519"),
        }
    )
    stderr = tmp_path / "stderr.txt"
    stderr.write_text("starting\n" + STDERR_ENDINGS[ending](planted).strip() + "\n")
    with pytest.raises(ToolError) as failure:
        run(["sh", "-c", f"cat '{stderr}' >&2; exit 3"])
    assert "exit 3" in str(failure.value)
    assert leaks(str(failure.value), planted) == []


def test_a_guest_console_tail_leaks_nothing(planted: Planted, tmp_path: Path) -> None:
    """Console tails (build failures, verification boots) are redacted, a cut key included."""
    packer.redactor_for({"db_secret": planted.comma})  # the build that booted this guest knew it
    console = tmp_path / "console.log"
    console.write_text(console_text(planted))
    tails = [_console_tail(console, count=n) for n in (3, 10, 200)]
    tails += ["\n".join(console_lines(console, n)) for n in (3, 200)]
    assert "Started ssh.service" in tails[2]
    for tail in tails:
        assert leaks(tail, planted) == []


def test_a_whole_failed_build_leaks_nothing(
    planted: Planted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`suitcase build` through the CLI (stub bootstrap, real Packer) whose steps print secrets."""
    from click.testing import CliRunner

    from suitcase.cli import cli
    from tests.fakes import FAKE_TEMPLATE, OS_TEMPLATE

    home = tmp_path / "home"
    shutil.copytree(PROJECT_ROOT / "ks", home / "ks")
    for folder in ("os", "image-templates", "scripts/bootstrap", "specs"):
        (home / folder).mkdir(parents=True)
    (home / "os" / "Fake-12-x86_64.yaml").write_text(OS_TEMPLATE)
    # the guest's console, as QEMU would write it, and a provisioner that shows what it knows
    console = "\n".join(
        [
            "cat '{{user `ssh_private_key_file`}}'",
            'echo "aws $AWS_SECRET_ACCESS_KEY"',
            'echo "password=\\"$PLANTED_SPACED\\""',
            "{ cat '{{user `ssh_private_key_file`}}'; cat \"$PLANTED_CONSOLE\"; } "
            ">> '{{user `serial_log`}}'",
            'echo "giving up: root:$PLANTED_HASH:1::::::" >&2',
            "exit 1",
        ]
    )
    template = json.loads(json.dumps(FAKE_TEMPLATE))
    template["variables"]["serial_log"] = ""
    template["provisioners"][0]["inline"] = console.splitlines()
    (home / "image-templates" / "qemu-disk.json").write_text(json.dumps(template))
    (home / "scripts" / "bootstrap" / "debian-disk.sh").write_text(
        "#!/bin/bash\n"
        'while [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
        'echo "session token=$AWS_SESSION_TOKEN"\n'
        'echo "password=\\"$PLANTED_SPACED\\"" >&2\n'
        'qemu-img create -q -f raw "$out" 64M\n'
    )
    (tmp_path / "console.txt").write_text(console_text(planted))
    monkeypatch.setenv("SUITCASE_HOME", str(home))
    monkeypatch.setenv("PLANTED_SPACED", planted.spaced)
    monkeypatch.setenv("PLANTED_HASH", planted.root_hash)
    monkeypatch.setenv("PLANTED_CONSOLE", str(tmp_path / "console.txt"))
    packer.redactor_for({"db_secret": planted.comma})  # the console quotes it (as console_text)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    args = ["--workspace", str(ws), "build", "master", "--os", "Fake-12-x86_64"]
    result = CliRunner().invoke(cli, [*args, "--timestamp", "20260101000000"])
    stage = ws / "images" / "master" / "Fake-12-x86_64-20260101000000"
    keys = ws / "keys" / "Fake-12-x86_64-20260101000000"
    problems: dict[str, object] = {
        **scan_tree(ws, planted, skip=(keys,)),  # the key folder holds the key itself
        "output": leaks(result.output, planted),
        "modes": [
            mode(stage / "build.log"),
            mode(stage / "console.log"),
            mode(keys / "id_ed25519"),
        ],
        "key folder mode": mode(keys),
    }
    assert problems == {"output": [], "modes": ["0o600"] * 3, "key folder mode": "0o700"}
    assert result.exit_code == 1
    assert "suitcase: error: packer build failed" in result.output
    assert "Started ssh.service" in (stage / "console.log").read_text()  # scrubbed, kept


FAKE_HOST = '''
import pytest


class Result:
    def __init__(self, stdout):
        self.stdout, self.rc = stdout, 0


class ShadowHost:
    """Answers `cat /etc/shadow` with a root password set, as a leaky image would."""

    def run(self, command):
        return Result("root:HASH:19000:0:99999:7:::\\n" if "shadow" in command else "")


@pytest.fixture
def image():
    return ShadowHost()
'''


def test_the_root_password_spec_never_shows_the_hash(
    planted: Planted, pytester: pytest.Pytester
) -> None:
    """The spec fails on an image with a root password, and neither the terminal (with
    --showlocals and long tracebacks) nor the JUnit XML shows the hash."""
    pytester.makeconftest(FAKE_HOST.replace("HASH", planted.root_hash))
    spec = PROJECT_ROOT / "specs" / "common" / "test_hygiene.py"
    pytester.makepyfile(test_hygiene=spec.read_text())
    result = pytester.runpytest_subprocess(
        "-k", "root_password", "-l", "--tb=long", "-vv", "--junitxml=junit.xml"
    )
    shown = result.stdout.str() + result.stderr.str()
    junit = (pytester.path / "junit.xml").read_text()
    assert {"terminal": leaks(shown, planted), "junit": leaks(junit, planted)} == {
        "terminal": [],
        "junit": [],
    }
    result.assert_outcomes(failed=1)
    assert "root's password is set" in shown


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_reports_of_a_suitcase_run_are_redacted(
    workers: list[str],
    planted: Planted,
    pytester: pytest.Pytester,
    fake_home: Path,
) -> None:
    """Whatever a spec prints, logs (testinfra logs command output) or fails with passes the
    redaction path before the terminal and the JUnit XML."""
    _specs(pytester)
    shadow = f"root:{planted.root_hash}:19000:0:99999:7:::"
    (pytester.path / "specs" / "common" / "test_leaky.py").write_text(
        "import logging\n\n\n"
        "def test_leaky(suitcase_artifact):\n"
        f"    shadow = {shadow!r}\n"
        "    logging.getLogger('testinfra').debug('RUN CommandResult(stdout=%r)', shadow)\n"
        "    print('read', shadow)\n"
        "    assert shadow.startswith('root:!'), shadow\n"
    )
    result = pytester.runpytest_subprocess(
        "specs",
        "--image=aws-hvm",
        *ARGS,
        "-l",
        "-rA",
        "--log-level=DEBUG",
        "-o",
        "junit_logging=all",
        *workers,
    )
    shown = result.stdout.str() + result.stderr.str()
    junit = (pytester.path / "reports" / "junit-Fake-12-x86_64-20260101000000.xml").read_text()
    assert {"terminal": leaks(shown, planted), "junit": leaks(junit, planted)} == {
        "terminal": [],
        "junit": [],
    }
    result.assert_outcomes(failed=1, passed=1)
    assert "read root:<redacted>:19000" in shown
    assert "test_leaky[aws-hvm] - AssertionError: root" in shown  # still pytest's summary line
    assert "RUN CommandResult" in junit
