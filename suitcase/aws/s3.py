"""S3 objects, checked end to end: multipart uploads with a full-object CRC64NVME, resumed after a
crash, read back with HeadObject(ChecksumMode=ENABLED); downloads verified before they count.

>>> crc64nvme_b64(b"123456789")
'rosUhgp5mIg='
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.aws.clients import AwsTarget
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.manifest import file_digests as sha256_and_crc

MiB = 1024 * 1024
_READ = 8 * MiB
#: S3's multipart limits (S3 User Guide, "Amazon S3 multipart upload limits")
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000

Say = Callable[[str], None]
Advance = Callable[[int], None]


class S3Error(SuitcaseError):
    """S3 refused, or what S3 holds is not what Suitcase sent or expected."""


@dataclass(frozen=True)
class TransferSettings:
    """site.yaml `s3:` (measured with benchmarks/upload.py; see README)."""

    part_size_mb: int = 16
    concurrency: int = 8
    transfer_client: str = "classic"

    @classmethod
    def from_site(cls, values: Any) -> TransferSettings:
        if hasattr(values, "model_dump"):  # the site model's `s3`, already checked at load
            values = values.model_dump()
        known = {"part_size_mb", "concurrency", "transfer_client"}
        for name in values:
            if name not in known:
                raise ConfigError(f"site setting s3.{name} is unknown (known: {sorted(known)})")
        settings = cls(**values)
        if not isinstance(settings.part_size_mb, int) or not 5 <= settings.part_size_mb <= 5120:
            raise ConfigError("site setting s3.part_size_mb must be a whole number from 5 to 5120")
        if not isinstance(settings.concurrency, int) or not 1 <= settings.concurrency <= 64:
            raise ConfigError("site setting s3.concurrency must be a whole number from 1 to 64")
        if settings.transfer_client not in ("classic", "crt"):
            raise ConfigError("site setting s3.transfer_client must be classic or crt")
        return settings

    @property
    def part_size(self) -> int:
        return self.part_size_mb * MiB

    def transfer_config(self, upload: bool = False, size: int | None = None) -> Any:
        from boto3.s3.transfer import TransferConfig

        # pinned, never "auto": auto may switch to the CRT client and ignore the settings above.
        # Every non-empty upload is multipart, even a small one: S3 then computes the
        # full-object CRC64NVME from the bytes it assembled, so HeadObject proves what arrived
        # (a single PutObject just stores the checksum it is sent on an endpoint that checks none)
        return TransferConfig(
            multipart_threshold=1 if upload else self.part_size,
            multipart_chunksize=self.part_size
            if size is None
            else part_size_for(self.part_size, size),
            max_concurrency=self.concurrency,
            preferred_transfer_client=self.transfer_client,
        )


@dataclass(frozen=True)
class StoredObject:
    """One object as confirmed in S3 (what the upload cookie records)."""

    key: str
    size: int
    crc64nvme: str
    sha256: str


def crc64nvme_b64(data: bytes, previous: int = 0) -> str:
    from awscrt.checksums import crc64nvme

    return base64.b64encode(crc64nvme(data, previous).to_bytes(8, "big")).decode()


def file_crc64nvme(path: Path, start: int = 0, length: int | None = None) -> str:
    """The base64 CRC64NVME S3 reports, of `path` (or of `length` bytes from `start`)."""
    from awscrt.checksums import crc64nvme

    crc, left = 0, length
    with path.open("rb") as handle:
        handle.seek(start)
        while left is None or left > 0:
            chunk = handle.read(_READ if left is None else min(_READ, left))
            if not chunk:
                break
            crc = crc64nvme(chunk, crc)
            if left is not None:
                left -= len(chunk)
    return base64.b64encode(crc.to_bytes(8, "big")).decode()


def file_digests(path: Path) -> tuple[str, str]:
    """The file's base64 CRC64NVME and hex sha256, in one read."""
    from awscrt.checksums import crc64nvme

    crc, digest = 0, hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ):
            crc = crc64nvme(chunk, crc)
            digest.update(chunk)
    return base64.b64encode(crc.to_bytes(8, "big")).decode(), digest.hexdigest()


def part_size_for(configured: int, size: int) -> int:
    """The part size a new upload of `size` bytes uses: the configured one, doubled until the
    file fits in 10,000 parts and kept within 5 MiB..5 GiB (s3transfer's own ChunksizeAdjuster,
    so a resumed upload sizes parts exactly as the transfer manager did).

    >>> part_size_for(16 * MiB, 200 * 1024 * MiB) // MiB
    32
    """
    from s3transfer.utils import ChunksizeAdjuster

    adjusted: int = ChunksizeAdjuster().adjust_chunksize(configured, size)
    return adjusted


def resumed_part_size(parts: dict[int, int], size: int, configured: int) -> int:
    """The part size an unfinished upload of `size` bytes began with, read from the sizes of
    the parts S3 holds (`{number: size}`): every part but the last has it.

    The size a new upload would use is taken when the parts agree with it (the settings did
    not change since); else the one they show, as a full part or as the last one. When no
    size fits them all, the new upload's: the parts then fail to match and are sent again.
    """
    fresh = part_size_for(configured, size)
    candidates = [fresh, max(parts.values(), default=0)]
    candidates += [
        (size - got) // (number - 1)
        for number, got in sorted(parts.items(), reverse=True)
        if number > 1 and (size - got) % (number - 1) == 0
    ]
    for part in candidates:
        count = -(-size // part) if part > 0 else 0
        if not (0 < part <= MAX_PART and (part >= MIN_PART or count == 1) and count <= MAX_PARTS):
            continue
        if all(
            number <= count and got == min(part, size - (number - 1) * part)
            for number, got in parts.items()
        ):
            return part
    return fresh


#: (target, credentials) -> the account id STS GetCallerIdentity gave
_ACCOUNTS: dict[tuple[Any, ...], str] = {}


def account_id(target: AwsTarget) -> str | None:
    """The account the target's credentials are for, asked once per target and credentials
    (STS GetCallerIdentity); None when it will not say (an AWS_ENDPOINT_URL serving no STS)."""
    import os

    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    who = getattr(target.credentials, "access_key_id", None)
    if target.kind == "account":  # boto3's credential chain: what selects it is the key
        who = tuple(os.environ.get(n) for n in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID"))
    key = (target.kind, target.region, target.endpoint_url, who)
    if key not in _ACCOUNTS:
        try:
            sts = target.client("sts", retries={"max_attempts": 2, "mode": "standard"})
            _ACCOUNTS[key] = str(sts.get_caller_identity()["Account"])
        except (BotoCoreError, ClientError, ResponseParserError, KeyError):
            return None  # not remembered: the next verb asks again
    return _ACCOUNTS[key]


def bucket_denied(client: Any, target: AwsTarget, name: str) -> SuitcaseError:
    """HeadBucket answered 403: whose bucket it is, as far as S3 will tell.

    A 403 is the same answer for another account's bucket and for this account's bucket
    when a bucket policy or an IAM policy denies the caller; ListBuckets (this account's
    buckets) tells them apart, when it is allowed.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from suitcase.aws.errors import BucketNotOwned

    try:
        answer = client.list_buckets(Prefix=name)
        mine: bool | None = any(b["Name"] == name for b in answer.get("Buckets", []))
    except (BotoCoreError, ClientError):
        mine = None
    where = target.describe()
    if mine is False:
        return BucketNotOwned(
            f"bucket {name} belongs to another account (HeadBucket: 403 on {where}, "
            "and this account's buckets do not include it); pick another site 'bucket'"
        )
    if mine:
        return S3Error(
            f"bucket {name} is this account's, but access to it is denied (HeadBucket: "
            f"403 on {where}): its bucket policy or your IAM policy denies these credentials"
        )
    return S3Error(
        f"access to bucket {name} is denied (HeadBucket: 403 on {where}): either its "
        "bucket policy or your IAM policy denies these credentials, or it is another "
        "account's bucket (then pick another site 'bucket')"
    )


def check_bucket_name(name: str) -> str:
    """AWS's bucket naming rules, checked before any call (the embedded endpoint is lax)."""
    why = None
    if not 3 <= len(name) <= 63:
        why = "it must be 3 to 63 characters long"
    elif not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name):
        why = "only lower-case letters, digits, dots and hyphens, starting and ending alphanumeric"
    elif ".." in name or ".-" in name or "-." in name:
        why = "dots may not be doubled or next to a hyphen"
    elif name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        why = "that prefix or suffix is reserved by S3"
    else:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            why = "it may not look like an IP address"
    if why:
        raise ConfigError(f"bucket '{name}' is not a valid S3 bucket name: {why}")
    return name


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def aws_error(exc: Exception, doing: str) -> S3Error:
    """A botocore error as one operator line."""
    code = _code(exc)
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "") or str(exc)
    return S3Error(f"{doing}: {code + ': ' if code else ''}{message}".replace("\n", " "))


@contextlib.contextmanager
def aws_calls(doing: str) -> Iterator[None]:
    """Any botocore/CRT error inside becomes one operator line (never a traceback)."""
    from awscrt.exceptions import AwsCrtError
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    try:
        yield
    except ClientError as exc:
        raise aws_error(exc, doing) from None
    except (BotoCoreError, AwsCrtError) as exc:
        raise S3Error(f"{doing}: {exc}") from None
    except ResponseParserError:  # its message quotes the whole reply (a web page, say)
        raise S3Error(f"{doing}: the endpoint's answer is no AWS response") from None


class Bucket:
    """One bucket at one target, with Suitcase's transfer settings."""

    def __init__(self, target: AwsTarget, name: str, settings: TransferSettings) -> None:
        self.target = target
        self.name = check_bucket_name(name)
        self.settings = settings
        config: dict[str, Any] = {"max_pool_connections": max(10, settings.concurrency + 2)}
        if (target.endpoint_url or "").startswith("http://"):
            # Over plain HTTP botocore SHA-256-signs each body, read by awscrt's C signer; when
            # one part fails, s3transfer makes the others' bodies raise inside that read, and
            # awscrt prints each such traceback to stderr (hundreds of lines before our one).
            # Unsigned, as over HTTPS: each part's CRC64NVME header, signed, covers its body.
            config["s3"] = {"payload_signing_enabled": False}
        self.client = target.client("s3", **config)
        self._owner: tuple[str | None] | None = None

    @property
    def owner(self) -> dict[str, str]:
        """`ExpectedBucketOwner` for every call that takes it, when the account is known: S3
        then refuses (403) to act on a bucket of the same name that another account owns (S3
        User Guide, "Verifying bucket ownership with bucket owner condition")."""
        if self._owner is None:
            self._owner = (account_id(self.target),)
        return {"ExpectedBucketOwner": self._owner[0]} if self._owner[0] else {}

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def ensure(self, create: bool, say: Say) -> None:
        """The bucket exists (made here only when `create`), and is ours to write."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.name, **self.owner)
            return
        except ClientError as exc:
            code = _code(exc)
            if code in ("403", "AccessDenied", "Forbidden"):
                raise self._denied() from None
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise aws_error(exc, f"cannot reach bucket {self.name}") from None
        except BotoCoreError as exc:
            raise S3Error(f"cannot reach {self.target.describe()}: {exc}") from None
        if not create:
            raise S3Error(
                f"bucket {self.name} does not exist in {self.target.region}; create it, or pass "
                "--create-bucket"
            )
        args: dict[str, Any] = {"Bucket": self.name}
        if self.target.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.target.region}
        try:
            self.client.create_bucket(**args)
        except ClientError as exc:
            raise aws_error(exc, f"cannot create bucket {self.name}") from None
        say(f"created bucket {self.name}")

    def _denied(self) -> SuitcaseError:
        return bucket_denied(self.client, self.target, self.name)

    def keys(self, prefix: str) -> dict[str, int]:
        """Every key under `prefix` with its size."""
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix, **self.owner
        ):
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def unfinished(self, prefix: str) -> list[dict[str, Any]]:
        """Multipart uploads begun under `prefix` and never completed nor aborted."""
        uploads: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.name, Prefix=prefix, **self.owner
        ):
            uploads.extend(page.get("Uploads", []))
        return uploads

    def abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):  # already gone is what we want
            self.client.abort_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id, **self.owner
            )

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(
                self.client.head_object(
                    Bucket=self.name, Key=key, ChecksumMode="ENABLED", **self.owner
                )
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise aws_error(exc, f"cannot read {self.url(key)}") from None

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            answer = self.client.delete_objects(
                Bucket=self.name, Delete={"Objects": batch, "Quiet": True}, **self.owner
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise S3Error(f"cannot delete {self.url(first['Key'])}: {first.get('Message')}")

    # --- upload -------------------------------------------------------------------------------

    def put(
        self,
        path: Path,
        key: str,
        sha256: str,
        say: Say,
        advance: Advance,
        crc64nvme: str | None = None,
    ) -> StoredObject:
        """Upload `path` to `key` unless it is there with the same checksum; confirm it.

        The object must be the file as its manifest records it. With the manifest's `crc64nvme`
        (computed with its sha256 when the stage was built) the file is read only to send it:
        S3's CRC64NVME of what it received must equal the manifest's, else the object is removed
        (a file changed since its manifest, or corrupted on the way). Without it, the file is
        read once for both checksums before sending, and refused when its sha256 changed.
        """
        size = path.stat().st_size
        if crc64nvme is None:
            file_sha256, crc64nvme = sha256_and_crc(path)
            if file_sha256 != sha256:
                raise S3Error(
                    f"{path} no longer matches the sha256 its manifest records (nothing was "
                    "uploaded); rebuild it"
                )
        wanted = StoredObject(key, size, crc64nvme, sha256)
        head = self.head(key)
        if (
            head is not None
            and _matches(head, wanted)
            and head.get("Metadata", {}).get("sha256") == sha256
        ):
            say(f"{self.url(key)}: already there with the same checksum, skipped")
            advance(size)
            return wanted
        try:
            if not self._resume(path, wanted, say, advance):
                self._upload(path, wanted, advance)
        except BaseException:
            # Ctrl-C, SIGTERM or an error: leave no unfinished multipart upload behind
            self._abort_unfinished(key)
            raise
        self.confirm(wanted, path)
        return wanted

    def _abort_unfinished(self, key: str) -> None:
        """Abort `key`'s unfinished uploads if S3 answers (after a failed or interrupted upload)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for upload in self.unfinished(key):
                if upload["Key"] == key:
                    self.abort(key, upload["UploadId"])
        except (BotoCoreError, ClientError):
            # S3 unreachable (the error being raised says why): the next upload resumes or
            # aborts what is left, and this error must not hide that one
            pass

    def confirm(self, wanted: StoredObject, path: Path | None = None) -> None:
        """S3's own full-object CRC64NVME and size equal the local file's, or the object goes."""
        head = self.head(wanted.key)
        if head is None:
            raise S3Error(f"{self.url(wanted.key)} is missing right after its upload")
        if not _matches(head, wanted):
            held = head.get("ChecksumCRC64NVME"), head.get("ContentLength")
            # a corrupt object must never be fetched or skipped as uploaded
            self.delete([wanted.key])
            changed = path is not None and held[1] == wanted.size
            raise S3Error(
                f"{self.url(wanted.key)}: S3 holds CRC64NVME {held[0]} ({held[1]} bytes), the "
                f"manifest records {wanted.crc64nvme} ({wanted.size} bytes): "
                + (
                    f"{path} no longer matches the checksums its manifest records, or was "
                    "corrupted on the way; object removed (rebuild it, or run upload again)"
                    if changed
                    else "corrupted on the way, object removed; run upload again"
                )
            )

    def _upload(self, path: Path, wanted: StoredObject, advance: Advance) -> None:
        from awscrt.exceptions import AwsCrtError
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {
            "ChecksumAlgorithm": "CRC64NVME",
            "ChecksumCRC64NVME": wanted.crc64nvme,
            "Metadata": {"sha256": wanted.sha256},
            **self.owner,
        }
        try:
            self.client.upload_file(
                str(path),
                self.name,
                wanted.key,
                ExtraArgs=extra,
                Callback=advance,
                Config=self.settings.transfer_config(upload=True, size=wanted.size),
            )
        except (S3UploadFailedError, ClientError, BotoCoreError, AwsCrtError) as exc:
            if _code(exc) == "BadDigest" or _code(exc.__context__) == "BadDigest":
                raise self._bad_digest(path, wanted) from None
            raise S3Error(
                f"upload of {path.name} to {self.url(wanted.key)} failed: {exc}"
            ) from None

    def _bad_digest(self, path: Path, wanted: StoredObject) -> S3Error:
        """CompleteMultipartUpload refused the manifest's CRC64NVME (400 BadDigest)."""
        return S3Error(
            f"{self.url(wanted.key)}: S3 refused the object (BadDigest): the CRC64NVME of what it "
            f"received is not {wanted.crc64nvme}, the manifest's; {path} no longer matches the "
            "checksums its manifest records, or was corrupted on the way; nothing was stored "
            "(rebuild it, or run upload again)"
        )

    def _resume(self, path: Path, wanted: StoredObject, say: Say, advance: Advance) -> bool:
        """Finish an interrupted multipart upload of `key` from its parts already in S3.

        Parts are kept only when their size and checksum (CRC64NVME when S3 lists it, else the
        part's ETag, an MD5) match the file; the others are sent again. When none match, the
        upload is aborted. False: nothing to resume, upload afresh.
        """
        uploads = [u for u in self.unfinished(wanted.key) if u["Key"] == wanted.key]
        uploads.sort(key=lambda u: u["Initiated"])
        for stale in uploads[:-1]:
            say(f"{self.url(wanted.key)}: aborting an older unfinished upload")
            self.abort(wanted.key, stale["UploadId"])
        if not uploads:
            return False
        upload_id = uploads[-1]["UploadId"]
        parts = self._parts(wanted.key, upload_id)
        # the part size the upload began with (settings may have changed since), so that the
        # parts there keep their places and the file still fits in 10,000 parts
        part_size = resumed_part_size(
            {n: p["Size"] for n, p in parts.items()}, wanted.size, self.settings.part_size
        )
        count = max(1, -(-wanted.size // part_size))
        kept: dict[int, dict[str, Any]] = {}
        for number, part in parts.items():
            start = (number - 1) * part_size
            length = min(part_size, wanted.size - start)
            # a part that differs (cut short by the crash, another part size) is sent again
            if number <= count and part["Size"] == length and _part_matches(path, start, part):
                kept[number] = part
        if not kept:
            say(
                f"{self.url(wanted.key)}: the unfinished upload does not match the file, "
                "aborted; uploading afresh"
            )
            self.abort(wanted.key, upload_id)
            return False
        say(
            f"{self.url(wanted.key)}: resuming an unfinished upload ({len(kept)} of {count} "
            "parts already there)"
        )
        advance(sum(p["Size"] for p in kept.values()))

        def send(number: int) -> dict[str, Any]:
            start = (number - 1) * part_size
            with path.open("rb") as handle:
                handle.seek(start)
                body = handle.read(min(part_size, wanted.size - start))
            crc = crc64nvme_b64(body)
            answer = self.client.upload_part(
                Bucket=self.name,
                Key=wanted.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm="CRC64NVME",
                ChecksumCRC64NVME=crc,
                **self.owner,
            )
            advance(len(body))
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC64NVME": crc}

        todo = [n for n in range(1, count + 1) if n not in kept]
        with concurrent.futures.ThreadPoolExecutor(self.settings.concurrency) as pool:
            sent = list(pool.map(send, todo))
        done = [
            {"PartNumber": n, "ETag": p["ETag"], **_part_crc(p)} for n, p in kept.items()
        ] + sent
        from botocore.exceptions import ClientError

        try:
            # the whole file's CRC64NVME: S3 compares it with the object it assembles
            self.client.complete_multipart_upload(
                Bucket=self.name,
                Key=wanted.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": sorted(done, key=lambda p: p["PartNumber"])},
                ChecksumCRC64NVME=wanted.crc64nvme,
                ChecksumType="FULL_OBJECT",
                **self.owner,
            )
        except ClientError as exc:
            if _code(exc) == "BadDigest":
                raise self._bad_digest(path, wanted) from None
            raise
        return True

    def _parts(self, key: str, upload_id: str) -> dict[int, dict[str, Any]]:
        parts: dict[int, dict[str, Any]] = {}
        for page in self.client.get_paginator("list_parts").paginate(
            Bucket=self.name, Key=key, UploadId=upload_id, **self.owner
        ):
            parts.update({p["PartNumber"]: p for p in page.get("Parts", [])})
        return parts

    # --- download -----------------------------------------------------------------------------

    def get(self, key: str, dest: Path, size: int, sha256: str, advance: Advance) -> StoredObject:
        """Download `key` to `dest` only if it has `size`, `sha256` and S3's CRC64NVME.

        The bytes land under a temporary name beside `dest` and are renamed only once checked;
        a bad download is removed and never seen under `dest`.
        """
        from awscrt.exceptions import AwsCrtError
        from botocore.exceptions import BotoCoreError, ClientError

        head = self.head(key)
        if head is None:
            raise S3Error(f"{self.url(key)} does not exist")
        part = dest.with_name(f".{dest.name}.fetching")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                self.client.download_file(
                    self.name,
                    key,
                    str(part),
                    ExtraArgs=self.owner or None,
                    Callback=advance,
                    Config=self.settings.transfer_config(),
                )
            except (ClientError, BotoCoreError, AwsCrtError) as exc:
                raise S3Error(f"download of {self.url(key)} failed: {exc}") from None
            crc, digest = file_digests(part)
            got = StoredObject(key, part.stat().st_size, crc, digest)
            held = head.get("ChecksumCRC64NVME")
            problem = None
            if got.size != size:
                problem = f"{got.size} bytes, the manifest says {size}"
            elif got.sha256 != sha256:
                problem = "its sha256 differs from the manifest's"
            elif held is not None and held != got.crc64nvme:
                problem = f"its CRC64NVME {got.crc64nvme} differs from S3's {held}"
            if problem:
                raise S3Error(f"{self.url(key)} arrived corrupt ({problem}); nothing was kept")
            part.replace(dest)
            return got
        finally:
            part.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(
                Bucket=self.name, Key=key, ChecksumMode="ENABLED", **self.owner
            )
            return bytes(answer["Body"].read())
        except ClientError as exc:
            raise aws_error(exc, f"cannot read {self.url(key)}") from None


def _matches(head: dict[str, Any], wanted: StoredObject) -> bool:
    return bool(
        head.get("ContentLength") == wanted.size
        and head.get("ChecksumCRC64NVME") == wanted.crc64nvme
    )


def _part_crc(part: dict[str, Any]) -> dict[str, str]:
    crc = part.get("ChecksumCRC64NVME")
    return {"ChecksumCRC64NVME": crc} if crc else {}


def _part_matches(path: Path, start: int, part: dict[str, Any]) -> bool:
    if part.get("ChecksumCRC64NVME"):
        return bool(part["ChecksumCRC64NVME"] == file_crc64nvme(path, start, part["Size"]))
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        handle.seek(start)
        left = part["Size"]
        while left > 0 and (chunk := handle.read(min(_READ, left))):
            digest.update(chunk)
            left -= len(chunk)
    return bool(part["ETag"].strip('"') == digest.hexdigest())
