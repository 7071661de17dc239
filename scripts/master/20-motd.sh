#!/usr/bin/env bash
# motd and /etc/suitcase-release naming the OS template and the build set.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "motd for $SUITCASE_OS build $SUITCASE_BUILD"
cat > /etc/motd <<MOTD

  $SUITCASE_OS -- built by Suitcase, build $SUITCASE_BUILD

MOTD
chmod 0644 /etc/motd

cat > /etc/suitcase-release <<REL
SUITCASE_OS=$SUITCASE_OS
SUITCASE_FAMILY=$SUITCASE_FAMILY
SUITCASE_MAJOR=$SUITCASE_MAJOR
SUITCASE_BUILD=$SUITCASE_BUILD
REL
chmod 0644 /etc/suitcase-release
