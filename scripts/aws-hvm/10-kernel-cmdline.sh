#!/usr/bin/env bash
# EC2 HVM: serial console on the kernel line (get-console-output reads it).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "kernel line: console=ttyS0,115200n8 console=tty0"
kernel_args "console" "console=ttyS0,115200n8 console=tty0"
