#!/usr/bin/env bash
# EC2: cloud-init on.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "enabling cloud-init"
cloud_init on
