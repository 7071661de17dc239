"""The one redaction path: everything Suitcase writes or shows passes a Redactor first.

A Redactor masks the secrets it knows (a build set's sensitive Packer values, its build key,
AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and whatever was `remember`ed in this process: the build
secrets SUITCASE_SECRET_*, as is and base64, once buildsecrets.build_secrets() has read them),
each also URL- and JSON-encoded, split into its pieces, in hex, and base64-encoded even inside
a longer blob (`Authorization: Basic` of `user:token`, a docker `auth`: the whole blob is masked),
plus what looks like a secret: assignments to a `*password*`/`*secret*`/`*token*` name (a quoted
value whole, spaces and all), `Authorization: Basic|Bearer` values, PEM private key blocks,
40-character AWS secrets after a secret key name, and crypt(3) password hashes.

Text is redacted *decoded* (callers undo their tool's escapes first) and line streams keep state,
so a private key that arrives one line at a time is masked from its BEGIN line to its END line.

>>> Redactor(["hunter2-x"])('password="a b c" then hunter2-x')
'password=<redacted> then <redacted>'
"""

from __future__ import annotations

import base64
import json
import os
import re
import string
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import IO

MASK = "<redacted>"
KEY_MASK = "<redacted private key>"
#: Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: A known secret shorter than this is not masked (it would mask common words); a piece of a
#: longer one (a line of a key, a word of a passphrase) is masked from this length on.
MIN_SECRET = 4
MIN_PIECE = 8
#: A PEM block without its END line stops being masked after this many lines (an RSA-16384
#: key is about 200 lines): a cut-off key must not hide the rest of a log for ever.
MAX_KEY_LINES = 400

# Bounded repeats throughout: a guest's line of 100,000 progress dots must stay linear to scan.
_NAME = (
    r"[A-Za-z0-9_.-]{0,40}(?:password|passphrase|secret|token|credential|"
    r"private_key(?!_file|_path))[A-Za-z0-9_.-]{0,40}"
)
_VALUE = r"""(?P<value>"(?:\\.|[^"\\])*"?|'[^']*'?|[^\s"'&]+)"""
_ASSIGNMENT = re.compile(
    rf"""(?i)(?P<key>(?<![\w-])["']?{_NAME}["']?\s*[:=]\s*|--{_NAME}\s+){_VALUE}"""
)
_AWS_SECRET = re.compile(
    r"(?i)(?P<key>secret[\w-]{0,20}?key\W{1,8})(?P<value>(?:[A-Za-z0-9/+]|%2[BF]){40})(?![\w/+%=])"
)
# The scheme is kept (it says what kind of credential went by), whatever follows it is not.
_AUTHORIZATION = re.compile(
    r"""(?i)(?P<key>(?<![\w-])(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:basic|bearer)\s+)"""
    r"""(?P<value>[^\s"']+)"""
)
_CRYPT_HASH = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|md5|sha1)\$[^\s:\"']{8,}")
_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_BASE64_LINE = re.compile(r"^\s*(?:[A-Za-z0-9+/=]|<redacted>){16,}\s*$")
_BASE64_CHARS = string.ascii_letters + string.digits + "+/"
_BASE64_TAIL = re.compile(r"[A-Za-z0-9+/]*={0,2}")

# Secrets this process has learnt (a build set's values, its build key): every Redactor knows them,
# so an error or a console tail shown far from the build that knew them is masked too.
# Replaced whole, never changed in place: builds run in threads, and one may read it while
# another remembers.
_REMEMBERED: frozenset[str] = frozenset()
_REMEMBERING = threading.Lock()


def remember(*secrets: str) -> None:
    """Teach every Redactor of this process these secrets (ignored when too short to mask)."""
    global _REMEMBERED
    with _REMEMBERING:
        _REMEMBERED = _REMEMBERED | {s for s in secrets if s and len(s.strip()) >= MIN_SECRET}


def forget(*secrets: str) -> None:
    """Undo `remember` (tests)."""
    global _REMEMBERED
    with _REMEMBERING:
        _REMEMBERED = _REMEMBERED - set(secrets)


def variants(secret: str) -> set[str]:
    """The forms a secret takes in text: as is, URL-encoded, JSON-escaped, its lines and words."""
    secret = secret.strip()  # a key file's last newline is no part of the secret
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        secret.replace(",", "%!(PACKER_COMMA)"),  # Packer's machine-readable escape
    }
    forms = {f for f in forms if len(f.strip()) >= MIN_SECRET}
    body = _END.sub(" ", _BEGIN.sub(" ", secret))  # a key's armour is no secret, its body is
    for piece in re.split(r"[\s,]+|\\n", body):
        if len(piece) >= MIN_PIECE:
            forms |= {piece, urllib.parse.quote(piece, safe="")}
    return forms


def encoded(secret: str) -> set[str]:
    """A secret's hex (both cases) and, for each byte offset it may have inside a longer base64
    blob, the base64 characters its bytes alone decide (those shared with a neighbour dropped).

    >>> blob = base64.b64encode(b"deploy:Deploy-Token-1").decode()  # curl -u deploy:...
    >>> any(form in blob for form in encoded("Deploy-Token-1"))
    True
    """
    data = secret.strip().encode()
    forms = {data.hex(), data.hex().upper()}
    for offset in range(3):
        text = base64.b64encode(bytes(offset) + data).decode()
        # a base64 character is 6 bits; keep those whose bits all come from the secret's bytes
        forms.add(text[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6])
    # shorter forms would match ordinary base64 (hashes, keys) by chance, masking whole blobs
    return {f for f in forms if len(f) >= MIN_PIECE}


class Redactor:
    """Masks known secrets and secret-looking text; `lines()` gives a stateful per-line filter."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._own = {s for s in secrets if s and len(s.strip()) >= MIN_SECRET}
        self._cache: tuple[frozenset[str], re.Pattern[str] | None, frozenset[str]] = (
            frozenset(),
            None,
            frozenset(),
        )

    def add(self, *secrets: str) -> None:
        self._own.update(s for s in secrets if s and len(s.strip()) >= MIN_SECRET)

    @property
    def secrets(self) -> frozenset[str]:
        env = {os.environ.get(name, "") for name in SECRET_ENV}
        return frozenset(
            s for s in self._own | _REMEMBERED | env if s and len(s.strip()) >= MIN_SECRET
        )

    def _known(self) -> tuple[re.Pattern[str] | None, frozenset[str]]:
        """One pattern for every form of every secret, and which of those forms are encodings."""
        secrets = self.secrets
        if self._cache[0] != secrets:
            forms: set[str] = set().union(*(variants(s) for s in secrets))
            codes = frozenset().union(*(encoded(s) for s in secrets))
            # an encoding first, so that where one starts it wins (its whole run is masked);
            # then a whole secret before its pieces
            ordered = sorted(codes, key=len, reverse=True)
            ordered += sorted(forms - codes, key=len, reverse=True)
            pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._cache = (secrets, pattern, codes)
        return self._cache[1], self._cache[2]

    def known(self, text: str) -> str:
        """Mask only the known secrets (and their forms) in `text`; an encoded one with the
        whole base64 (or hex) run around it, since its neighbours share its characters."""
        pattern, codes = self._known()
        if pattern is None:
            return text
        out: list[str] = []
        done = 0  # text[:done] is in `out`
        for match in pattern.finditer(text):
            start, end = match.span()
            if end <= done:  # inside a run already masked
                continue
            start = max(start, done)  # a secret that goes on past that run: the rest of it too
            if match[0] in codes:
                start = done + len(text[done:start].rstrip(_BASE64_CHARS))
                tail = _BASE64_TAIL.match(text, end)
                end = tail.end() if tail else end
            if start > done or not out:  # two masks side by side are one
                out += [text[done:start], MASK]
            done = end
        return "".join(out) + text[done:] if out else text

    def lines(self) -> LineRedactor:
        """A filter for one stream of lines: a private key's body is masked line after line."""
        return LineRedactor(self)

    def __call__(self, text: str) -> str:
        """Redact a whole text (a file, an error, a console): known secrets, then line by line."""
        lines = text.split("\n")
        _mask_orphan_key_bodies(lines)  # first: a known piece replaced inside would hide them
        line_filter = self.lines()
        return "\n".join(line_filter(line) for line in self.known("\n".join(lines)).split("\n"))


class LineRedactor:
    """Redacts one line at a time, remembering whether it is inside a private key block."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.in_key = 0  # lines masked so far in an open PEM block; 0: not in one

    def __call__(self, line: str) -> str:
        line = self.redactor.known(line)
        if self.in_key:
            end = _END.search(line)
            if end is None and self.in_key < MAX_KEY_LINES:
                self.in_key += 1
                return KEY_MASK if line.strip() else line
            self.in_key = 0
            if end is not None:
                line = KEY_MASK + line[end.end() :]
        begin = _BEGIN.search(line)
        if begin is not None:
            end = _END.search(line, begin.end())
            if end is None:
                self.in_key = 1
                return line[: begin.start()] + KEY_MASK
            line = line[: begin.start()] + KEY_MASK + self(line[end.end() :])
        return _patterns(line)


def _patterns(line: str) -> str:
    line = _AWS_SECRET.sub(lambda m: m["key"] + MASK, line)
    line = _AUTHORIZATION.sub(_mask_value, line)
    line = _ASSIGNMENT.sub(_mask_value, line)
    return _CRYPT_HASH.sub(MASK, line)


def _mask_value(match: re.Match[str]) -> str:
    if match["value"].strip("\"'") == "" or match["value"] == MASK:
        return match[0]
    return match["key"] + MASK


def _mask_orphan_key_bodies(lines: list[str]) -> None:
    """An END line whose BEGIN was cut off (a tail, a truncated log): mask the base64 above it."""
    opened = False
    for index, line in enumerate(lines):
        if _BEGIN.search(line):
            opened = True
        end = _END.search(line)
        if end is None:
            continue
        if not opened:
            above = index - 1
            while above >= 0 and _BASE64_LINE.match(lines[above]):
                lines[above] = KEY_MASK
                above -= 1
        opened = False


DEFAULT = Redactor()


def redact_text(text: str) -> str:
    """Redact with what this process knows (remembered secrets, the AWS environment, patterns)."""
    return DEFAULT(text)


def open_log(path: Path) -> IO[str]:
    """Open a log for appending, creating it 0600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if os.fstat(fd).st_mode & 0o077:  # a log left by an older Suitcase
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", errors="replace")


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, 0600 from its creation."""
    from suitcase.manifest import write_atomic  # manifest -> config -> errors -> here

    write_atomic(path, text, mode=0o600)


def scrub_file(path: Path, redactor: Redactor | None = None) -> None:
    """Rewrite a file another program wrote raw (QEMU's console) redacted, atomically, 0600.

    Should that fail (no room), the raw file is removed rather than left behind, and the error
    raised. A writer still running keeps writing into the old, unlinked file.
    """
    if not path.is_file():
        return
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
        write_private(path, (redactor or DEFAULT)(raw))
    except OSError:
        path.unlink(missing_ok=True)
        raise
