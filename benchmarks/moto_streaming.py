"""moto's server with one fix the embedded endpoint needs for multi-GiB objects (run as a script).

moto 5.2.5 computes a multipart upload's full-object CRC64NVME by copying every part into one
more buffer and that buffer once again (about 3x the object in RAM on top of the object itself):
a 4 GiB disk's CompleteMultipartUpload fails with a 500 on this machine. This launcher folds the
parts into the CRC as they are added (awscrt's crc64nvme takes the previous value), which gives
the same checksum, then starts moto's server with the given arguments.

    python benchmarks/moto_streaming.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import base64
import sys
from typing import Any

from awscrt.checksums import crc64nvme
from moto.s3 import models
from moto.server import main

_add, _build = models.MultipartChecksumBuilder.addPart, models.MultipartChecksumBuilder.build


def _streaming(builder: Any) -> bool:
    return bool(
        builder.checksum_type == "FULL_OBJECT" and builder.checksum_algorithm == "CRC64NVME"
    )


def add_part(self: Any, part: bytes) -> None:
    if not _streaming(self):
        _add(self, part)
        return
    self._crc = crc64nvme(part, getattr(self, "_crc", 0))
    self.part_count += 1


def build(self: Any) -> Any:
    if not _streaming(self):
        return _build(self)
    value = base64.b64encode(getattr(self, "_crc", 0).to_bytes(8, "big")).decode()
    return self.checksum_type, value, 1


models.MultipartChecksumBuilder.addPart = add_part  # type: ignore[method-assign]
models.MultipartChecksumBuilder.build = build  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
