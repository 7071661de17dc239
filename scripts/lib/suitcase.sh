# shellcheck shell=bash
# Helpers shared by the stage scripts. Sourced, never executed:
#   . "$SUITCASE_SCRIPTS/lib/suitcase.sh"
# Every function works for both families (SUITCASE_FAMILY=debian|el).

: "${SUITCASE_FAMILY:?SUITCASE_FAMILY must be set (debian|el)}"
: "${SUITCASE_STAGE:?SUITCASE_STAGE must be set}"
: "${SUITCASE_MAJOR:?SUITCASE_MAJOR must be set}"

export DEBIAN_FRONTEND=noninteractive LC_ALL=C

say() { printf '  [%s] %s\n' "$(basename "$0" .sh)" "$*"; }
fail() { printf '  [%s] error: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Is this an EL release with systemd (7 and later)?
el_systemd() { [ "$SUITCASE_FAMILY" = el ] && [ "$SUITCASE_MAJOR" -ge 7 ]; }

# Kernels installed on the system: versions with a /boot/vmlinuz-VER and
# /lib/modules/VER.
installed_kernels() {
    local f ver
    for f in /boot/vmlinuz-*; do
        [ -e "$f" ] || continue
        ver=${f#/boot/vmlinuz-}
        case $ver in *rescue*) continue ;; esac
        [ -d "/lib/modules/$ver" ] && echo "$ver"
    done | sort -V
}

newest_kernel() { installed_kernels | tail -n 1; }

# edit_args "CURRENT ARGS" "KEYS TO REMOVE" "ARGS TO ADD": prints the new
# argument string. A key removes every argument named KEY or KEY=...; added
# arguments go at the end, in the given order, each once.
edit_args() {
    local current=$1 remove=$2 add=$3 out="" arg key r keep same=1
    # Already as asked (every added argument present, no other value of a removed key): leave
    # the line untouched, so re-running a stage never reorders it (parity with the master).
    for arg in $add; do
        case " $current " in *" $arg "*) ;; *) same=0 ;; esac
    done
    for arg in $current; do
        key=${arg%%=*}
        for r in $remove; do
            if [ "$key" = "$r" ]; then
                case " $add " in *" $arg "*) ;; *) same=0 ;; esac
            fi
        done
    done
    if [ "$same" = 1 ]; then
        echo "$current"
        return 0
    fi
    for arg in $current; do
        key=${arg%%=*}
        keep=1
        for r in $remove; do
            [ "$key" = "$r" ] && keep=0
        done
        for r in $add; do
            [ "$arg" = "$r" ] && keep=0
        done
        [ "$keep" = 1 ] && out="$out $arg"
    done
    for arg in $add; do
        out="$out $arg"
    done
    echo "${out# }"
}

# Edit the APPEND lines of an extlinux/syslinux configuration.
extlinux_edit_args() {
    local conf=$1 remove=$2 add=$3 tmp line indent args
    tmp=$(mktemp "$conf.XXXXXX")
    while IFS= read -r line || [ -n "$line" ]; do
        if [[ $line =~ ^[[:space:]]*[Aa][Pp][Pp][Ee][Nn][Dd][[:space:]] ]]; then
            indent=${line%%[Aa][Pp][Pp][Ee][Nn][Dd]*}
            args=$(printf '%s\n' "$line" | sed -E 's/^[[:space:]]*[Aa][Pp][Pp][Ee][Nn][Dd][[:space:]]+//')
            printf '%sAPPEND %s\n' "$indent" "$(edit_args "$args" "$remove" "$add")"
        else
            printf '%s\n' "$line"
        fi
    done < "$conf" > "$tmp"
    chmod --reference="$conf" "$tmp"
    mv -f "$tmp" "$conf"
}

# Edit GRUB_CMDLINE_LINUX in /etc/default/grub (grub2 systems).
default_grub_edit_args() {
    local remove=$1 add=$2 current new
    [ -f /etc/default/grub ] || return 0
    current=$(sed -n 's/^GRUB_CMDLINE_LINUX="\(.*\)"$/\1/p' /etc/default/grub | tail -n 1)
    new=$(edit_args "$current" "$remove" "$add")
    if grep -q '^GRUB_CMDLINE_LINUX=' /etc/default/grub; then
        sed -i "s|^GRUB_CMDLINE_LINUX=.*|GRUB_CMDLINE_LINUX=\"$new\"|" /etc/default/grub
    else
        echo "GRUB_CMDLINE_LINUX=\"$new\"" >> /etc/default/grub
    fi
}

# kernel_args REMOVE_KEYS ADD_ARGS: change the kernel command line of every
# installed kernel and of kernels installed later.
kernel_args() {
    local remove=$1 add=$2 arg info_args
    case $SUITCASE_FAMILY in
    debian)
        if [ -f /boot/extlinux/extlinux.conf ]; then
            extlinux_edit_args /boot/extlinux/extlinux.conf "$remove" "$add"
        fi
        if [ -f /etc/default/grub ] && [ -d /boot/grub ] && have update-grub; then
            default_grub_edit_args "$remove" "$add"
            update-grub >/dev/null 2>&1 || fail "update-grub failed"
        fi
        ;;
    el)
        have grubby || fail "grubby not found"
        # grubby removes an argument only by its exact text: collect the
        # current arguments matching the keys first.
        info_args=$(grubby --info=ALL 2>/dev/null | sed -n 's/^args="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p')
        for arg in $info_args; do
            for key in $remove; do
                if [ "${arg%%=*}" = "$key" ]; then
                    grubby --update-kernel=ALL --remove-args="$arg"
                fi
            done
        done
        grubby --update-kernel=ALL --args="$add"
        if [ "$SUITCASE_MAJOR" -ge 7 ]; then
            default_grub_edit_args "$remove" "$add"
        fi
        ;;
    *) fail "unknown family $SUITCASE_FAMILY" ;;
    esac
}

# initramfs_has_modules KVER MOD...: true when the initramfs of KVER already
# holds every module in the list that KVER ships.
initramfs_has_modules() {
    local kver=$1 img listing m ko
    shift
    img=$(initramfs_of "$kver")
    [ -f "$img" ] || return 1
    case $SUITCASE_FAMILY in
    debian) listing=$(lsinitramfs "$img" 2>/dev/null) || return 1 ;;
    el) listing=$(lsinitrd "$img" 2>/dev/null) || return 1 ;;
    esac
    for m in "$@"; do
        ko=$(modinfo -k "$kver" -n "$m" 2>/dev/null) || continue
        case $ko in /*) ;; *) continue ;; esac   # built into the kernel
        ko=${ko#*/lib/modules/}
        # (a here-string, not printf | grep -q: SIGPIPE + pipefail)
        grep -qF "modules/$ko" <<< "$listing" || return 1
    done
    return 0
}

# initramfs_add_drivers MOD...: force kernel modules into every initramfs
# (now and for kernels installed later). An initramfs is rebuilt only when
# it lacks one of them: rebuilding costs minutes under TCG, and Debian's
# MODULES=most already includes most drivers. Modules a kernel does not
# ship are skipped for that kernel.
initramfs_add_drivers() {
    local mods=("$@") kver m present
    case $SUITCASE_FAMILY in
    debian)
        touch /etc/initramfs-tools/modules
        for m in "${mods[@]}"; do
            grep -qxF "$m" /etc/initramfs-tools/modules || echo "$m" >> /etc/initramfs-tools/modules
        done
        for kver in $(installed_kernels); do
            for m in "${mods[@]}"; do
                modinfo -k "$kver" "$m" >/dev/null 2>&1 || say "note: $m not shipped by kernel $kver"
            done
            if initramfs_has_modules "$kver" "${mods[@]}"; then
                say "initramfs of $kver already holds ${mods[*]}: not rebuilt"
            else
                say "update-initramfs -u -k $kver"
                update-initramfs -u -k "$kver" >/dev/null || fail "update-initramfs failed for $kver"
                initramfs_has_modules "$kver" "${mods[@]}" || fail "initramfs of $kver still lacks one of ${mods[*]}"
            fi
        done
        ;;
    el)
        mkdir -p /etc/dracut.conf.d
        for kver in $(installed_kernels); do
            present=""
            for m in "${mods[@]}"; do
                if modinfo -k "$kver" "$m" >/dev/null 2>&1; then
                    present="$present $m"
                else
                    say "note: $m not shipped by kernel $kver, skipped"
                fi
            done
            # dracut.conf.d applies to every kernel: the loop ends with the
            # newest kernel's list (add_drivers of a missing module fails).
            printf 'add_drivers+=" %s "\n' "${present# }" > /etc/dracut.conf.d/90-suitcase.conf
            # shellcheck disable=SC2086 # $present is a word list
            if initramfs_has_modules "$kver" $present; then
                say "initramfs of $kver already holds$present: not rebuilt"
            else
                say "dracut -f for $kver:$present"
                dracut -f "$(initramfs_of "$kver")" "$kver" || fail "dracut failed for $kver"
            fi
        done
        ;;
    esac
}

# Initramfs image of a kernel version.
initramfs_of() {
    case $SUITCASE_FAMILY in
    debian) echo "/boot/initrd.img-$1" ;;
    el) echo "/boot/initramfs-$1.img" ;;
    esac
}

# nm_keyfile_dns_options FILE "OPT OPT ...": set dns-options in the [ipv4] section of a
# NetworkManager keyfile. Keyfile lists are ';'-separated (with a trailing ';'), never
# comma-separated (nm-settings-keyfile(5)); an existing dns-options line is replaced.
nm_keyfile_dns_options() {
    local file=$1 value
    # shellcheck disable=SC2086 # one list item per word of $2
    value="$(printf '%s;' $2)"
    sed -i '/^dns-options=/d' "$file"
    grep -q '^\[ipv4\]' "$file" || printf '\n[ipv4]\n' >> "$file"
    sed -i "/^\[ipv4\]/a dns-options=$value" "$file"
}

# Enable (on) or disable (off) cloud-init's services.
cloud_init() {
    local mode=$1 svc
    local services=(cloud-init-local cloud-init cloud-config cloud-final)
    case $mode in
    on)
        rm -f /etc/cloud/cloud-init.disabled
        if [ "$SUITCASE_FAMILY" = el ] && [ "$SUITCASE_MAJOR" -lt 7 ]; then
            for svc in "${services[@]}"; do chkconfig "$svc" on; done
        else
            systemctl enable "${services[@]}"
        fi
        ;;
    off)
        mkdir -p /etc/cloud
        touch /etc/cloud/cloud-init.disabled
        if [ "$SUITCASE_FAMILY" = el ]; then
            if [ "$SUITCASE_MAJOR" -lt 7 ]; then
                for svc in "${services[@]}"; do chkconfig "$svc" off 2>/dev/null || true; done
            else
                systemctl disable "${services[@]}" 2>/dev/null || true
            fi
        fi
        ;;
    esac
}

# Enable a service at boot.
enable_service() {
    if [ "$SUITCASE_FAMILY" = el ] && [ "$SUITCASE_MAJOR" -lt 7 ]; then
        chkconfig "$1" on
    else
        systemctl enable "$1"
    fi
}

# Does a service unit / init script exist?
service_exists() {
    if [ "$SUITCASE_FAMILY" = el ] && [ "$SUITCASE_MAJOR" -lt 7 ]; then
        [ -x "/etc/init.d/$1" ]
    else
        # (no "| grep -q": with pipefail, SIGPIPE would make it fail)
        local units
        units=$(systemctl list-unit-files --no-legend "$1.service" 2>/dev/null || true)
        case $units in "$1.service"*) return 0 ;; *) return 1 ;; esac
    fi
}

# write_root_authorized_keys MODE: "keep", "empty" (zero bytes) or "newline"
# (a single newline, what cloud-init's AWS images expect).
write_root_authorized_keys() {
    install -d -m 0700 -o root -g root /root/.ssh
    case $1 in
    keep) ;;
    empty) : > /root/.ssh/authorized_keys ;;
    newline) printf '\n' > /root/.ssh/authorized_keys ;;
    *) fail "unknown authorized_keys mode $1" ;;
    esac
    if [ -f /root/.ssh/authorized_keys ]; then
        chown root:root /root/.ssh/authorized_keys
        chmod 0600 /root/.ssh/authorized_keys
    fi
    if have restorecon; then restorecon -R /root/.ssh || true; fi
}
