#!/usr/bin/env bash
# Empty /tmp and /var/tmp. Runs last: the stage scripts themselves live in
# /tmp/suitcase-scripts (run-stage.sh already holds its list).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "emptying /tmp and /var/tmp"
# systemd-private-* belong to running services; systemd removes them.
find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name 'systemd-private-*' -exec rm -rf {} +
sync
