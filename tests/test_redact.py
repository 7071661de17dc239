"""suitcase.redact: what is masked, what is left alone, and files made private."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase import redact
from suitcase.errors import BuildError
from suitcase.packer import PackerRedactor, parse_machine_line
from suitcase.redact import KEY_MASK, MASK, Redactor

KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDx8Qm3R2kz0PZtH0eNN9Rbxy3rWmLK0mHcNnXRXwSdqQAAAJiXRmHdl0Zh\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
BODY = KEY.splitlines()[1:3]


@pytest.fixture(autouse=True)
def only_this_tests_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets other tests taught the process (their build keys) must not change these results."""
    monkeypatch.setattr(redact, "_REMEMBERED", frozenset())
    for name in redact.SECRET_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def remembered() -> Iterator[list[str]]:
    """Secrets a test teaches the whole process, forgotten afterwards."""
    taught: list[str] = []
    yield taught
    redact.forget(*taught)


@pytest.mark.parametrize(
    "shown",
    [
        "a,b c-Xy9",
        urllib.parse.quote("a,b c-Xy9", safe=""),
        urllib.parse.quote_plus("a,b c-Xy9"),
        "a%!(PACKER_COMMA)b c-Xy9",
    ],
)
def test_a_known_secret_is_masked_in_every_form(shown: str) -> None:
    assert Redactor(["a,b c-Xy9"])(f"value [{shown}] end") == f"value [{MASK}] end"


def test_pieces_of_a_known_secret_are_masked_alone() -> None:
    redactor = Redactor([KEY, "correct-horse battery-staple"])
    assert redactor(f"line {BODY[1]}") == f"line {MASK}"
    assert redactor("said battery-staple") == f"said {MASK}"
    assert redactor(json.dumps(KEY.strip())) == f'"{MASK}"'  # as a JSON string
    # the armour of a key is no secret: other keys' BEGIN lines are not mangled
    assert "PRIVATE KEY-----" in redactor("-----END RSA PRIVATE KEY-----")


TOKEN = "Deploy-Token-7f3a9c21e8"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# a secret after 0, 1 or 2 bytes (mod 3) of other text starts at each of base64's three alignments
@pytest.mark.parametrize("before", ["", "u", "us", "ci:", "pull:", "deploy:"])
@pytest.mark.parametrize("after", ["", "x", "xy", "\n"])
def test_a_secret_base64_encoded_with_other_text_is_masked_with_it(before: str, after: str) -> None:
    blob = b64(before + TOKEN + after)
    assert Redactor([TOKEN])(f"auth [{blob}] end") == f"auth [{MASK}] end"


def test_credentials_encoded_by_curl_and_docker_are_masked(remembered: list[str]) -> None:
    """`curl -v -u deploy:$TOKEN` prints its Basic header; `cat ~/.docker/config.json` its auth."""
    remembered.append(TOKEN)  # as a build secret is
    redact.remember(*remembered)
    curl = f"> Authorization: Basic {b64('deploy:' + TOKEN)}"
    docker = json.dumps({"auths": {"registry.example.com": {"auth": b64("ci-robot:" + TOKEN)}}})
    text = redact.redact_text(f"{curl}\n{docker}")
    assert text == (
        f"> Authorization: Basic {MASK}\n"
        f'{{"auths": {{"registry.example.com": {{"auth": "{MASK}"}}}}}}'
    )


def test_a_secret_in_hex_is_masked() -> None:
    shown = TOKEN.encode().hex()
    assert Redactor([TOKEN])(f"{shown} {shown.upper()}.") == f"{MASK} {MASK}."


def test_encoded_forms_leave_other_base64_and_hex_alone() -> None:
    """Too short a secret has no base64 form: a blob that merely holds its letters is no leak."""
    text = (
        f"sha256 5d41402abc4b2a76b9719d911017c592 blob {b64('a different value')} "
        f"short {b64('xxabcdxx')} key AAAAC3NzaC1lZDI1NTE5AAAAIKk"
    )
    assert Redactor([TOKEN, "abcd"])(text) == text


def test_short_secrets_are_not_masked() -> None:
    assert Redactor(["abc"])("abc abcd") == "abc abcd"


def test_remembered_secrets_reach_every_redactor(remembered: list[str]) -> None:
    remembered.append("Remembered-Value-77")
    redact.remember(*remembered)
    assert redact.redact_text("see Remembered-Value-77") == f"see {MASK}"
    assert str(BuildError("failed with Remembered-Value-77")) == f"failed with {MASK}"


def test_aws_environment_secrets_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Ab12Cd34Ef56Gh78/Ij90Kl12+Mn34Op56Qr78St"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr//////////wEaDH")
    text = f"x={urllib.parse.quote(secret, safe='')} y={secret} z=FwoGZXIvYXdzEJr//////////wEaDH"
    assert Redactor()(text) == f"x={MASK} y={MASK} z={MASK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password="a b c" next', f"password={MASK} next"),
        ("password='a b c' next", f"password={MASK} next"),
        ('{"db_password": "a b", "user": "x"}', f'{{"db_password": {MASK}, "user": "x"}}'),
        ('password="a b c', f"password={MASK}"),  # no closing quote: to the end of the line
        ("DB_SECRET: a,b,c next", f"DB_SECRET: {MASK} next"),
        ("--ssh-password hunter2 -v", f"--ssh-password {MASK} -v"),
        (
            "?X-Amz-Security-Token=abc%2Fdef&X-Amz-Date=1",
            f"?X-Amz-Security-Token={MASK}&X-Amz-Date=1",
        ),
        ('password=""', 'password=""'),  # nothing to hide
        (
            "aws_secret_access_key    Ab12Cd34Ef56Gh78/Ij90Kl12+Mn34Op56Qr78St shared",
            f"aws_secret_access_key    {MASK} shared",
        ),
        ("root:$6$saltsalt$hashhashhash:19000::", f"root:{MASK}:19000::"),
        ("root:!$y$j9T$salt1234$hash5678hash:1::", f"root:!{MASK}:1::"),
        ("rootpw --iscrypted $6$rounds=5000$salt$hash", f"rootpw --iscrypted {MASK}"),
        ("> Authorization: Basic ZGVwbG95OnM=", f"> Authorization: Basic {MASK}"),
        (
            "curl -H 'Authorization: Bearer eyJhbGciOiJ9.e30.sig' https://x/",
            f"curl -H 'Authorization: Bearer {MASK}' https://x/",
        ),
        ('{"authorization": "Bearer abc.def"}', f'{{"authorization": "Bearer {MASK}"}}'),
        ("  authorization: basic dXNlcjpw", f"  authorization: basic {MASK}"),
        ("Proxy-Authorization: Basic dXNlcjpw ok", f"Proxy-Authorization: Basic {MASK} ok"),
    ],
)
def test_secret_looking_text_is_masked(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ssh_private_key_file=/ws/keys/x/id_ed25519",
        "PasswordAuthentication no",
        "PermitRootLogin prohibit-password",
        "passwd:         files systemd",
        "==> qemu-disk: Waiting for SSH to become available...",
        "[  OK  ] Started systemd-ask-password-console.path - Dispatch Password Requests.",
        "connect via VNC without a password to vnc://127.0.0.1:5959",
        "sha256 5d41402abc4b2a76b9719d911017c592aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "secret_key=",
        "1795815797,,ui,say,==> null: Provisioning step had errors%!(PACKER_COMMA) if present...",
        "< HTTP/1.1 401 Unauthorized: authorization failed",
        '< WWW-Authenticate: Basic realm="Registry"',
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert Redactor()(text) == text


def test_a_key_arriving_line_by_line_is_masked_from_begin_to_end() -> None:
    stream = Redactor().lines()
    out = [stream(line) for line in ["before", *KEY.splitlines(), "after"]]
    assert out == ["before", KEY_MASK, KEY_MASK, KEY_MASK, KEY_MASK, "after"]


def test_a_key_without_end_stops_being_masked_eventually() -> None:
    stream = Redactor().lines()
    stream("-----BEGIN RSA PRIVATE KEY-----")
    masked = [stream(f"line {n}") for n in range(redact.MAX_KEY_LINES + 5)]
    assert masked[: redact.MAX_KEY_LINES - 1] == [KEY_MASK] * (redact.MAX_KEY_LINES - 1)
    assert masked[-1] == f"line {redact.MAX_KEY_LINES + 4}"


def test_a_key_whose_begin_was_cut_off_is_masked_in_a_whole_text() -> None:
    tail = "\n".join(["boot", *KEY.splitlines()[1:], "login:"])
    assert Redactor()(tail).splitlines() == [
        "boot",
        KEY_MASK,
        KEY_MASK,
        KEY.splitlines()[-1],
        "login:",
    ]


def test_a_cut_key_is_masked_when_a_piece_of_it_is_known_too() -> None:
    tail = "\n".join([*KEY.splitlines()[1:], "login:"])
    known = Redactor([BODY[0][:40]])  # say, the header every OpenSSH key starts with
    assert known(tail).splitlines() == [KEY_MASK, KEY_MASK, KEY.splitlines()[-1], "login:"]


def test_a_key_on_one_line_is_masked() -> None:
    one_line = KEY.strip().replace("\n", "\\n")
    assert Redactor()(f"key: {one_line} done") == f"key: {KEY_MASK} done"


def test_packer_lines_are_redacted_decoded_and_keep_their_format() -> None:
    stream = PackerRedactor(["x,y z-secret"]).lines()
    innocent = [
        "1795815797,,ui,say,==> null: Running the cleanup provisioner%!(PACKER_COMMA) if present",
        "1795815797,,ui,say,\\n==> Wait completed after 10 milliseconds",
        "1795815797,null,artifact,0,files-count,1",
        "1795815797,,error-count,1",
        "not machine-readable at all",
    ]
    assert [stream(line) for line in innocent] == innocent
    leaked = "1795815797,,ui,message,    null: got x%!(PACKER_COMMA)y z-secret ok"
    assert stream(leaked) == f"1795815797,,ui,message,    null: got {MASK} ok"
    assert parse_machine_line(stream(leaked)) == ("", "ui", ["message", f"    null: got {MASK} ok"])


def test_packer_stdout_and_stderr_keep_their_own_key_state() -> None:
    stream = PackerRedactor([]).lines()
    lines = KEY.splitlines()
    out = [
        stream(f"1,,ui,message,    null: {lines[0]}"),
        stream(f"1,,ui,error,==> null: {lines[0]}"),
        stream(f"1,,ui,error,==> null: {lines[1]}"),
        stream(f"1,,ui,error,==> null: {lines[3]}"),  # stderr's key ends ...
        stream(f"1,,ui,message,    null: {lines[1]}"),  # ... stdout's goes on
        stream(f"1,,ui,message,    null: {lines[3]}"),
        stream("1,,ui,message,    null: done"),
    ]
    assert [line.split(",", 4)[4] for line in out] == [
        f"    null: {KEY_MASK}",
        f"==> null: {KEY_MASK}",
        KEY_MASK,
        KEY_MASK,
        KEY_MASK,
        KEY_MASK,
        "    null: done",
    ]


def test_logs_are_created_private_even_under_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with redact.open_log(tmp_path / "new.log") as handle:
            handle.write("x\n")
        loose = tmp_path / "old.log"
        loose.write_text("before\n")
        loose.chmod(0o644)
        with redact.open_log(loose) as handle:
            handle.write("after\n")
        redact.write_private(tmp_path / "written", "y")
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    assert modes == {"new.log": "0o600", "old.log": "0o600", "written": "0o600"}
    assert loose.read_text() == "before\nafter\n"


def test_scrub_file_rewrites_a_raw_file_redacted(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("boot\r\n" + KEY + 'password="a b"\n')
    console.chmod(0o644)
    inode = console.stat().st_ino
    redact.scrub_file(console)
    assert (
        console.read_text()
        == f"boot\n{KEY_MASK}\n{KEY_MASK}\n{KEY_MASK}\n{KEY_MASK}\npassword={MASK}\n"
    )
    assert oct(console.stat().st_mode & 0o777) == "0o600"
    assert console.stat().st_ino != inode  # replaced, not rewritten in place
    redact.scrub_file(tmp_path / "missing.log")  # nothing to do
    assert not (tmp_path / "missing.log").exists()


def test_a_console_that_cannot_be_scrubbed_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = tmp_path / "console.log"
    console.write_text('password="raw value"\n')

    def no_room(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(redact, "write_private", no_room)
    with pytest.raises(OSError, match="No space"):
        redact.scrub_file(console)
    assert not console.exists()  # no raw copy stays behind


@pytest.mark.parametrize(
    "unit",
    [
        "a.",
        "secretx",
        "-----BEGIN AAAA",
        "password",
        "Authorization: Basic ",
        b64("known-secret"),  # one base64 run of 1.6 MB
        "6b6e6f776e2d736563726574 ",  # hex
    ],
)
def test_long_lines_are_scanned_in_linear_time(unit: str) -> None:
    """A guest's progress dots (200 kB on one line) once took minutes: quadratic backtracking."""
    started = time.monotonic()
    Redactor(["known-secret"])(unit * 100_000)
    assert time.monotonic() - started < 10  # about 0.3 s here; unbounded repeats took > 100 s
