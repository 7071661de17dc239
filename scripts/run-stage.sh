#!/usr/bin/env bash
# Run one Suitcase provisioning stage inside the guest.
#
#   SUITCASE_FAMILY=debian SUITCASE_STAGE=master SUITCASE_OS=Debian-12-x86_64 \
#   SUITCASE_MAJOR=12 SUITCASE_BUILD=20240101120000 bash run-stage.sh master
#
# Runs common/*.sh, then STAGE/*.sh, then cleanup/*.sh, each sorted by name,
# each as its own bash process with the SUITCASE_* variables exported.
# Stops at the first script that fails, naming it.
set -euo pipefail

usage() { echo "usage: $0 master|vagrant|aws-hvm|aws-paravirt" >&2; exit 2; }
[ $# -eq 1 ] || usage
STAGE=$1
case $STAGE in
    master|vagrant|aws-hvm|aws-paravirt) ;;
    *) echo "run-stage: unknown stage '$STAGE'" >&2; usage ;;
esac

: "${SUITCASE_FAMILY:?run-stage: SUITCASE_FAMILY must be set (debian|el)}"
: "${SUITCASE_OS:?run-stage: SUITCASE_OS must be set (e.g. Debian-12-x86_64)}"
: "${SUITCASE_MAJOR:?run-stage: SUITCASE_MAJOR must be set (e.g. 12)}"
: "${SUITCASE_BUILD:?run-stage: SUITCASE_BUILD must be set (build set id)}"
case $SUITCASE_FAMILY in
    debian|el) ;;
    *) echo "run-stage: SUITCASE_FAMILY must be debian or el, not '$SUITCASE_FAMILY'" >&2; exit 2 ;;
esac
case $SUITCASE_MAJOR in
    ''|*[!0-9]*) echo "run-stage: SUITCASE_MAJOR must be a number, not '$SUITCASE_MAJOR'" >&2; exit 2 ;;
esac
if [ -n "${SUITCASE_STAGE:-}" ] && [ "$SUITCASE_STAGE" != "$STAGE" ]; then
    echo "run-stage: SUITCASE_STAGE=$SUITCASE_STAGE disagrees with argument $STAGE" >&2
    exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "run-stage: must run as root" >&2; exit 1; }

# Build secrets: SUITCASE_SECRETS is Packer's sensitive `build_secrets` (NAME:base64 pairs);
# each script gets SUITCASE_SECRET_<NAME>. Never echoed, and the pairs go no further.
if [ -n "${SUITCASE_SECRETS:-}" ]; then
    for pair in $SUITCASE_SECRETS; do
        name=${pair%%:*}
        case $name in
            [A-Z]*) ;;
            *) echo "run-stage: a build secret has a bad name" >&2; exit 2 ;;
        esac
        case $name in
            *[!A-Z0-9_]*) echo "run-stage: a build secret has a bad name" >&2; exit 2 ;;
        esac
        value=$(printf '%s' "${pair#*:}" | base64 -d 2>/dev/null) || {
            echo "run-stage: build secret $name is not base64" >&2
            exit 2
        }
        export "SUITCASE_SECRET_$name=$value"
    done
fi
unset SUITCASE_SECRETS pair name value

SUITCASE_STAGE=$STAGE
SUITCASE_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SUITCASE_FAMILY SUITCASE_STAGE SUITCASE_OS SUITCASE_MAJOR SUITCASE_BUILD SUITCASE_SCRIPTS

# Collect the list first: cleanup empties /tmp, where these scripts live.
export LC_ALL=C
scripts=()
for dir in common "$STAGE" cleanup; do
    [ -d "$SUITCASE_SCRIPTS/$dir" ] || continue
    for f in "$SUITCASE_SCRIPTS/$dir"/*.sh; do
        [ -e "$f" ] && scripts+=("$f")
    done
done
[ ${#scripts[@]} -gt 0 ] || { echo "run-stage: no scripts found under $SUITCASE_SCRIPTS" >&2; exit 1; }

echo "==> suitcase stage $STAGE for $SUITCASE_OS ($SUITCASE_FAMILY $SUITCASE_MAJOR), build $SUITCASE_BUILD"
start=$SECONDS
for f in "${scripts[@]}"; do
    name=${f#"$SUITCASE_SCRIPTS"/}
    echo "--> $name"
    t0=$SECONDS
    if ! bash "$f"; then
        echo "run-stage: FAILED in $name (stage $STAGE)" >&2
        exit 1
    fi
    echo "    ($name: $((SECONDS - t0)) s)"
done
echo "==> stage $STAGE done in $((SECONDS - start)) s"
