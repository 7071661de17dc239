#!/usr/bin/env bash
# EC2 HVM: block and network drivers of Xen and Nitro instances in the
# initramfs (xen-blkfront, nvme, ena; ixgbevf is the older SR-IOV NIC).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

initramfs_add_drivers xen-blkfront xen-netfront nvme ena ixgbevf
