#!/usr/bin/env bash
# EC2 paravirtual: Xen PV block and network drivers in the initramfs.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

initramfs_add_drivers xen-blkfront xen-netfront
