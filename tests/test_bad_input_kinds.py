"""The bad-input catalogue, completed for issue 12 (reliability): the kinds the issue names —
wrong types, unknown keys, files that are folders, empty and binary files, environment overrides
set wrong — across the CLI, the plugin's options, OS templates and site.yaml.

tests/test_bad_input.py and tests/test_plugin_bad_input.py hold the earlier cases; this file adds
the kinds they lacked, with the same checks (one line `suitcase: error: ...` or, in pytest,
`ERROR: suitcase: ...`; the expected exit code; no traceback; nothing deleted or written), and
one test that counts the whole catalogue by kind.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws.clients import AwsTarget, check_endpoint_url
from suitcase.aws.errors import AwsError, aws_errors
from suitcase.aws.s3 import S3Error, aws_calls
from suitcase.errors import ConfigError
from tests import test_bad_input as base
from tests import test_plugin, test_plugin_bad_input
from tests.conftest import tree_snapshot
from tests.test_bad_input import DEBIAN, Case

case = base.case  # the same fixture: a sentinel and a build set nothing may touch
pytest_plugins = ["pytester"]

Setup = Callable[[Case], list[str]]


def _site(text: str | bytes) -> Setup:
    def setup(c: Case) -> list[str]:
        path = c.ws / "site.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return ["plan", "--os", DEBIAN]

    return setup


def _template(text: str) -> Setup:
    def setup(c: Case) -> list[str]:
        c.os_template("Bad-1-x86_64", text)
        return ["plan", "--os", "Bad-1-x86_64"]

    return setup


def _template_edit(old: str, new: str) -> Setup:
    def setup(c: Case) -> list[str]:
        text = (c.home.os_dir / f"{DEBIAN}.yaml").read_text()
        assert old in text, f"{old!r} is no longer in the Debian template"
        c.os_template("Bad-1-x86_64", text.replace(old, new))
        return ["plan", "--os", "Bad-1-x86_64"]

    return setup


def _args(*args: str) -> Setup:
    return lambda c: list(args)


def _site_folder(c: Case) -> list[str]:
    (c.ws / "site.yaml").mkdir()
    return ["plan", "--os", DEBIAN]


def _site_dangling_link(c: Case) -> list[str]:
    os.symlink(c.tmp / "moved-away.yaml", c.ws / "site.yaml")
    return ["plan", "--os", DEBIAN]


def _site_variable_folder(c: Case) -> list[str]:
    (c.tmp / "conf.d").mkdir()
    os.environ["SUITCASE_SITE"] = str(c.tmp / "conf.d")  # undone by monkeypatch (see ENV)
    return ["plan", "--os", DEBIAN]


def _workspace_is_a_file(c: Case) -> list[str]:
    (c.tmp / "ws.txt").write_text("not a folder\n")
    return ["--workspace", str(c.tmp / "ws.txt"), "list"]


def _workspace_variable_file(c: Case) -> list[str]:
    (c.tmp / "ws.txt").write_text("not a folder\n")
    os.environ["SUITCASE_WORKSPACE"] = str(c.tmp / "ws.txt")
    return ["list"]


#: the cheapest verb that reaches AWS (no plan, no build); a dry run, should it ever get further
DELETE = ["delete", "master", "--os", DEBIAN, "--timestamp", "20260101000000", "--dry-run"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """`python -m http.server`'s handler, without its log lines (they would be on our stderr)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def web_server(folder: Path) -> tuple[str, Callable[[], None]]:
    """A plain web server on 127.0.0.1 serving an empty `folder`: its URL, and how to stop it."""
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def _endpoint_not_aws(c: Case) -> list[str]:
    """AWS_ENDPOINT_URL at a web server that is no AWS (it answers STS's POST with a 501 page)."""
    url, stop = web_server(c.tmp / "www")
    c.cleanups.append(stop)
    os.environ["AWS_ENDPOINT_URL"] = url  # undone by monkeypatch (see ENV)
    return DELETE


#: case -> (set-up, exit code, text the one line holds)
MORE: dict[str, tuple[Setup, int, str]] = {
    # site.yaml
    "site-unknown-key": (_site("colour: blue\n"), 2, "site.yaml: unknown key 'colour'"),
    "site-nested-unknown-key": (_site("s3: {speed: 5}\n"), 2, "unknown key 's3.speed'"),
    "site-empty-file": (_site(""), 2, "site.yaml: the file is empty"),
    "site-comments-only": (_site("# nothing yet\n"), 2, "site.yaml: the file is empty"),
    "site-is-a-folder": (_site_folder, 2, "site.yaml: site settings must be a regular file"),
    "site-dangling-symlink": (_site_dangling_link, 2, "site settings must be a regular file"),
    "site-not-a-mapping": (_site("- cpus\n- 2\n"), 2, "must be a mapping of keys to values"),
    "site-mirrors-wrong-type": (_site("mirrors: 5\n"), 2, "key 'mirrors' must be a mapping"),
    "site-region-wrong-type": (_site("region: 5\n"), 2, "key 'region' must be a string"),
    "site-s3-wrong-type": (
        _site("s3: {part_size_mb: big}\n"),
        2,
        "key 's3.part_size_mb' must be a whole number (got 'big')",
    ),
    "site-aws-unknown-mode": (_site("aws: cloud\n"), 2, "key 'aws' must be 'auto', 'embedded'"),
    "site-bucket-invalid": (_site("bucket: Not_A_Bucket\n"), 2, "must be a valid S3 bucket"),
    "site-invalid-yaml": (_site("cpus: [2\n"), 2, "not valid YAML"),
    "site-option-missing-file": (
        _args("--site", "/nonexistent/site.yaml", "plan", "--os", DEBIAN),
        2,
        "site settings /nonexistent/site.yaml not found",
    ),
    # OS templates
    "os-template-empty-file": (_template(""), 2, "Bad-1-x86_64.yaml: the file is empty"),
    "os-template-unknown-key": (
        _template_edit("arch: x86_64\n", "arch: x86_64\ncolour: blue\n"),
        2,
        "Bad-1-x86_64.yaml: unknown key 'colour'",
    ),
    "os-template-wrong-type": (
        _template_edit("disk_size_mb: 4096", "disk_size_mb: big"),
        2,
        "key 'disk_size_mb' must be a whole number (got 'big')",
    ),
    "os-template-too-small": (
        _template_edit("disk_size_mb: 4096", "disk_size_mb: 100"),
        2,
        "key 'disk_size_mb' must be greater than or equal to 1024",
    ),
    "os-template-not-a-mapping": (_template("- debian\n"), 2, "must be a mapping of keys"),
    "os-template-wrong-arch": (
        _template_edit("arch: x86_64", "arch: arm64"),
        2,
        "key 'arch' must be 'x86_64' (got 'arm64')",
    ),
    # environment overrides set wrong
    "env-os-unknown": (_args("plan"), 2, "unknown OS 'Nope-1-x86_64'"),
    "env-timestamp-malformed": (
        _args("plan", "--os", DEBIAN),
        2,
        "timestamp 'yesterday' is not YYYYMMDDhhmmss",
    ),
    "env-aws-unknown": (
        _args("plan", "--os", DEBIAN),
        2,
        "SUITCASE_AWS: must be 'auto', 'embedded' or 'account' (got 'cloud')",
    ),
    "env-builder-unknown": (
        _args("plan", "--os", DEBIAN),
        2,
        "SUITCASE_BUILDER: must be 'qemu' or 'virtualbox' (got 'docker')",
    ),
    "env-memory-not-a-number": (
        _args("plan", "--os", DEBIAN),
        2,
        "SUITCASE_MEMORY: must be a whole number (got 'lots')",
    ),
    "env-site-is-a-folder": (_site_variable_folder, 2, "must be a regular file"),
    "env-workspace-is-a-file": (_workspace_variable_file, 2, "is not a folder"),
    "env-secret-bad-name": (
        _args("plan", "--os", DEBIAN),
        2,
        "bad build secret name SUITCASE_SECRET_registry (A-Z, 0-9 and _",
    ),
    "env-secret-empty": (
        _args("plan", "--os", DEBIAN),
        2,
        "build secret SUITCASE_SECRET_TOKEN is empty or shorter than 4 characters",
    ),
    # issue 18 item 8: these were botocore tracebacks of 74 and 90 lines
    "env-endpoint-url-not-a-url": (
        _args(*DELETE),
        2,
        "AWS_ENDPOINT_URL 'not a url' is not a URL: it must be http(s)://host[:port]",
    ),
    "env-endpoint-url-not-aws": (
        _endpoint_not_aws,
        1,
        "AWS_ENDPOINT_URL answers, but not as AWS does (http://127.0.0.1:",
    ),
    # the command line
    "workspace-is-a-file": (_workspace_is_a_file, 2, "is not a folder"),
    "unknown-verb": (_args("frobnicate"), 2, "No such command 'frobnicate'"),
    "unknown-option": (_args("plan", "--colour"), 2, "No such option '--colour'"),
    "builder-option-unknown": (
        _args("--builder", "docker", "plan"),
        2,
        "Invalid value for '--builder': 'docker' is not one of",
    ),
    "timestamp-impossible-date": (
        _args("plan", "--os", DEBIAN, "--timestamp", "20260230000000"),
        2,
        "is not a real date and time",
    ),
    "timestamp-too-long": (
        _args("build", "--os", DEBIAN, "--timestamp", "202601010000001"),
        2,
        "is not YYYYMMDDhhmmss (14 digits)",
    ),
    "fetch-without-timestamp": (
        _args("fetch", "all", "--os", DEBIAN),
        2,
        "fetch needs --timestamp",
    ),
    "fetch-latest": (
        _args("fetch", "all", "--os", DEBIAN, "--timestamp", "latest"),
        2,
        "fetch needs an explicit --timestamp",
    ),
    "verify-from-ami-not-an-ami": (
        _args("verify", "vagrant", "--os", DEBIAN, "--from", "ami"),
        2,
        "--from ami verifies an AMI: vagrant is not one",
    ),
    "register-not-an-ami": (
        _args("register", "vagrant", "--os", DEBIAN, "--timestamp", "20260101000000"),
        2,
        "'vagrant' has no AMI image type",
    ),
    "verify-mode-unknown": (
        _args("verify", "aws-hvm", "--os", DEBIAN, "--mode", "fast"),
        2,
        "Invalid value for '--mode': 'fast' is not one of",
    ),
    "endpoint-port-not-a-number": (
        _args("endpoint", "start", "--port", "abc"),
        2,
        "Invalid value for '--port': 'abc' is not a valid integer",
    ),
}

ENV: dict[str, dict[str, str]] = {
    "env-os-unknown": {"SUITCASE_OS": "Nope-1-x86_64"},
    "env-timestamp-malformed": {"SUITCASE_TIMESTAMP": "yesterday"},
    "env-aws-unknown": {"SUITCASE_AWS": "cloud"},
    "env-builder-unknown": {"SUITCASE_BUILDER": "docker"},
    "env-memory-not-a-number": {"SUITCASE_MEMORY": "lots"},
    "env-site-is-a-folder": {"SUITCASE_SITE": ""},  # set by the case; restored afterwards
    "env-workspace-is-a-file": {"SUITCASE_WORKSPACE": ""},
    "env-secret-bad-name": {"SUITCASE_SECRET_registry": "Registry-Token-5b7d9e1f3a"},
    "env-secret-empty": {"SUITCASE_SECRET_TOKEN": ""},
    "env-endpoint-url-not-a-url": {"AWS_ENDPOINT_URL": "not a url"},
    "env-endpoint-url-not-aws": {
        "AWS_ENDPOINT_URL": "",  # set by the case; restored afterwards
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",  # so that the request is made
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
    },
}


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_bad_input(name: str, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    setup, code, expected = MORE[name]
    base.refused_whole(case, monkeypatch, setup, code, expected, ENV.get(name, {}))


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "127.0.0.1:5000",
        "localhost",
        "ftp://host/",
        "http://",
        "http://h:99999",
        "http://[::1",
    ],
)
def test_aws_endpoint_url_must_be_http_host_port(url: str) -> None:
    with pytest.raises(ConfigError, match=r"is not a URL: it must be http\(s\)://host\[:port\]$"):
        check_endpoint_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "https://s3.eu-west-1.amazonaws.com", "http://[::1]:9000/"]
)
def test_aws_endpoint_urls_botocore_takes_are_taken(url: str) -> None:
    assert check_endpoint_url(url) == url


def test_a_reply_that_is_no_aws_response_is_one_line_wherever_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2's parser meets the web server's 501 page: botocore's ResponseParserError, which is no
    BotoCoreError, quoting the whole page."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    url, stop = web_server(tmp_path / "www")
    try:
        target = AwsTarget(kind="account", region="us-east-1", endpoint_url=url)
        ec2 = target.client("ec2")
        with pytest.raises(AwsError) as verb, aws_errors("listing AMIs", target):
            ec2.describe_images(Owners=["self"])
        with pytest.raises(S3Error) as transfer, aws_calls("delete of X"):
            ec2.describe_images(Owners=["self"])
    finally:
        stop()
    assert str(verb.value) == (
        f"listing AMIs: AWS_ENDPOINT_URL answers, but not as AWS does ({url} replied with no "
        "S3/STS response); point it at an S3/STS endpoint, or unset it"
    )
    assert str(transfer.value) == "delete of X: the endpoint's answer is no AWS response"


# --- the plugin's options and the settings it reads -----------------------------------------------

PLUGIN: dict[str, tuple[list[str], dict[str, str], str]] = {
    "plugin-timestamp-malformed": (
        ["--os=Fake-12-x86_64", "--timestamp=yesterday"],
        {},
        "timestamp 'yesterday' is not YYYYMMDDhhmmss",
    ),
    "plugin-unknown-os": (["--os=Nope-1-x86_64"], {}, "unknown OS 'Nope-1-x86_64'"),
    "plugin-source-ami-not-an-ami": (
        ["--os=Fake-12-x86_64", "--image=vagrant", "--suitcase-source=ami"],
        {},
        "--from ami verifies an AMI: vagrant is not one",
    ),
    "plugin-env-cpus-not-a-number": (
        ["--os=Fake-12-x86_64"],
        {"SUITCASE_CPUS": "many"},
        "SUITCASE_CPUS: must be a whole number (got 'many')",
    ),
    "plugin-env-aws-unknown": (
        ["--os=Fake-12-x86_64"],
        {"SUITCASE_AWS": "cloud"},
        "SUITCASE_AWS: must be 'auto', 'embedded' or 'account'",
    ),
    "plugin-site-empty-file": (["--os=Fake-12-x86_64", "--suitcase-site={empty}"], {}, "is empty"),
    "plugin-site-unknown-key": (
        ["--os=Fake-12-x86_64", "--suitcase-site={unknown}"],
        {},
        "unknown key 'colour'",
    ),
}


@pytest.mark.parametrize("name", sorted(PLUGIN))
def test_more_bad_plugin_input(
    name: str, pytester: pytest.Pytester, fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args, env, expected = PLUGIN[name]
    test_plugin._specs(pytester)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (pytester.path / "empty.yaml").write_text("")
    (pytester.path / "unknown.yaml").write_text("colour: blue\n")
    paths = {
        "empty": str(pytester.path / "empty.yaml"),
        "unknown": str(pytester.path / "unknown.yaml"),
    }
    ws = pytester.path / "ws"
    before = test_plugin_bad_input._sentinel(ws)
    argv = [a.format(**paths) for a in args]
    result = pytester.runpytest(
        "specs", *argv, f"--suitcase-workspace={ws}", "-p", "no:cacheprovider"
    )
    test_plugin_bad_input._one_usage_error(result, expected)
    assert tree_snapshot(ws) == before


# --- the catalogue, counted by kind ---------------------------------------------------------------

#: (where, what is wrong) -> a case that shows it, in one of the three catalogues
KINDS: dict[tuple[str, str], str] = {
    ("site.yaml", "wrong type"): "site-s3-wrong-type",
    ("site.yaml", "bool for a number"): "cpus-bool",
    ("site.yaml", "out of range"): "cpus-negative",
    ("site.yaml", "unknown key"): "site-unknown-key",
    ("site.yaml", "unknown nested key"): "site-nested-unknown-key",
    ("site.yaml", "empty file"): "site-empty-file",
    ("site.yaml", "binary file"): "binary-site",
    ("site.yaml", "file is a folder"): "site-is-a-folder",
    ("site.yaml", "not a mapping"): "site-not-a-mapping",
    ("site.yaml", "dangling symlink"): "site-dangling-symlink",
    ("site.yaml", "invalid YAML"): "site-invalid-yaml",
    ("site.yaml", "nested too deeply"): "deep-yaml-site",
    ("site.yaml", "alias bomb"): "yaml-alias-bomb-site",
    ("site.yaml", "injection into a kickstart"): "repo-name-newline",
    ("site.yaml", "bad bucket name"): "site-bucket-invalid",
    ("OS template", "wrong type"): "os-template-wrong-type",
    ("OS template", "unknown key"): "os-template-unknown-key",
    ("OS template", "empty file"): "os-template-empty-file",
    ("OS template", "binary file"): "binary-os-template",
    ("OS template", "file is a folder"): "template-is-a-folder",
    ("OS template", "not a mapping"): "os-template-not-a-mapping",
    ("OS template", "path escape"): "suite-path",
    ("OS template", "shell injection"): "suite-shell",
    ("OS template", "inconsistent fields"): "family-method-mismatch",
    ("environment", "SUITCASE_OS unknown"): "env-os-unknown",
    ("environment", "SUITCASE_OS empty"): "empty-os-variable",
    ("environment", "SUITCASE_TIMESTAMP malformed"): "env-timestamp-malformed",
    ("environment", "SUITCASE_TIMESTAMP empty"): "clean-empty-timestamp-variable",
    ("environment", "SUITCASE_AWS unknown"): "env-aws-unknown",
    ("environment", "SUITCASE_CPUS wrong type"): "cpus-from-variable",
    ("environment", "SUITCASE_SITE a folder"): "env-site-is-a-folder",
    ("environment", "SUITCASE_WORKSPACE a file"): "env-workspace-is-a-file",
    ("environment", "SUITCASE_SECRET_* bad name"): "env-secret-bad-name",
    ("environment", "SUITCASE_SECRET_* empty"): "env-secret-empty",
    ("environment", "AWS_ENDPOINT_URL not a URL"): "env-endpoint-url-not-a-url",
    ("environment", "AWS_ENDPOINT_URL not AWS"): "env-endpoint-url-not-aws",
    ("command line", "unknown verb"): "unknown-verb",
    ("command line", "unknown option"): "unknown-option",
    ("command line", "bad choice"): "builder-option-unknown",
    ("command line", "impossible date"): "timestamp-impossible-date",
    ("command line", "future date"): "future-timestamp",
    ("command line", "unknown image type"): "image-list-with-all-and-bogus",
    ("command line", "workspace is a file"): "workspace-is-a-file",
    ("command line", "site option is a device"): "device-site-option",
    ("command line", "missing --timestamp"): "fetch-without-timestamp",
    ("workspace", "read-only"): "read-only-workspace-build",
    ("workspace", "symlink loop"): "symlink-loop-workspace",
    ("manifest", "untrusted path"): "manifest-path-escapes",
    ("plugin", "malformed timestamp"): "plugin-timestamp-malformed",
    ("plugin", "unknown OS"): "plugin-unknown-os",
    ("plugin", "option combination"): "plugin-source-ami-not-an-ami",
    ("plugin", "environment override"): "plugin-env-cpus-not-a-number",
    ("plugin", "empty site file"): "plugin-site-empty-file",
    ("plugin", "unknown site key"): "plugin-site-unknown-key",
}


def test_the_catalogue_has_30_kinds_and_every_one_has_a_case() -> None:
    cases = {*base.CATALOGUE, *MORE, *PLUGIN}
    missing = sorted(name for name in KINDS.values() if name not in cases)
    assert not missing, f"kinds whose case is gone: {missing}"
    assert len(KINDS) >= 30
    assert len(set(KINDS.values())) == len(KINDS)  # one case never counts as two kinds
    wheres = {where for where, _ in KINDS}
    assert {"site.yaml", "OS template", "environment", "command line", "plugin"} <= wheres
    for where in ("site.yaml", "OS template"):  # the kinds the issue names, in both files
        kinds = {what for w, what in KINDS if w == where}
        assert {"wrong type", "unknown key", "empty file", "binary file", "file is a folder"} <= (
            kinds
        ), where
    assert len(cases) >= 100
