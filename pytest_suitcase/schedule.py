"""xdist scheduling by image type: all of one image's specs run on one worker, images in parallel.

Every spec is parametrized by the image under test, so the image name in a node id's parameter
part is its scope; xdist's own LoadScope scheduler does the rest.
"""

from __future__ import annotations

import re
from typing import Any

from xdist.scheduler import LoadScopeScheduling


def image_of(nodeid: str, images: list[str]) -> str | None:
    """The image type a parametrized node id belongs to, if any.

    >>> image_of("specs/common/test_x.py::test_y[aws-hvm-3]", ["master", "aws-hvm"])
    'aws-hvm'
    """
    match = re.search(r"\[([^\]]*)\]$", nodeid)
    if not match:
        return None
    ids = match.group(1)
    for name in sorted(images, key=len, reverse=True):
        if ids == name or ids.startswith(name + "-") or ids.endswith("-" + name):
            return name
    return None


class ImageScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def __init__(self, config: Any, log: Any, images: list[str]) -> None:
        super().__init__(config, log)
        self.images = images

    def _split_scope(self, nodeid: str) -> str:
        return image_of(nodeid, self.images) or nodeid
