#!/usr/bin/env bash
# QEMU as Packer's qemu builder starts it (the templates' qemu_binary):
#
#   qemu.sh QEMU-ARGS...   (runs qemu-system-x86_64, or $SUITCASE_QEMU)
#
# setpriv gives QEMU a parent-death signal, so QEMU dies with the Packer
# process that started it however Packer dies: a killed Packer never leaves
# a guest running with its disk held open and its ports listening.
set -euo pipefail
exec setpriv --pdeathsig KILL -- "${SUITCASE_QEMU:-qemu-system-x86_64}" "$@"
