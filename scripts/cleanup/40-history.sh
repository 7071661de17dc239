#!/usr/bin/env bash
# Shell and tool histories.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "removing shell histories"
for home in /root /home/*; do
    [ -d "$home" ] || continue
    rm -f "$home/.bash_history" "$home/.sh_history" "$home/.zsh_history" \
        "$home/.python_history" "$home/.lesshst" "$home/.viminfo" "$home/.wget-hsts"
done
