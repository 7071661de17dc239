"""Tag names Suitcase puts on everything it creates in AWS, so a rerun finds what it made."""

BUILD_SET = "suitcase:build-set"  # <os>-<timestamp>
STAGE_KEY = "suitcase:stage-key"
OS = "suitcase:os"
TIMESTAMP = "suitcase:timestamp"
IMAGE_TYPE = "suitcase:image-type"
VERSION = "suitcase:version"
