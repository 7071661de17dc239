#!/usr/bin/env bash
# Build a bootable Debian raw disk image with debootstrap, without partition
# device nodes (the partition is attached by byte offset with losetup -o).
#
# Usage (run as root):
#   debian-disk.sh --output OUT.raw --size-mb 4096 --suite bookworm \
#       --mirror URL --cache-dir DIR --authorized-key PUBKEY_FILE \
#       [--packages "pkg1,pkg2,..."] [--hostname NAME]
#
# Result: OUT.raw with one MBR partition starting at 1 MiB (ext4, label
# "root"), extlinux as boot loader, root login by the given key only,
# eth0 on DHCP (ifupdown), cloud-init installed but disabled.
# Every package comes from the bootstrap: nothing is installed in the guest
# later (the guest runs under TCG and is slow).
set -euo pipefail

PROG=$(basename "$0")
PART_START_SECTOR=2048
SECTOR=512

# Packages every Suitcase Debian master needs (on top of the variant).
BASE_PACKAGES=(
    systemd-sysv udev dbus kmod procps iproute2 iputils-ping netbase
    ifupdown isc-dhcp-client
    linux-image-amd64 initramfs-tools zstd e2fsprogs
    openssh-server python3 sudo cloud-init
    # debootstrap's resolver ignores virtual packages: python3-cryptography
    # (for cloud-init) needs python3-cffi-backend-api-*, provided by this.
    python3-cffi-backend
    locales ca-certificates less
)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $PROG --output OUT.raw --size-mb MB --suite SUITE --mirror URL
       --cache-dir DIR --authorized-key PUBKEY_FILE [--packages "a,b,c"]
       [--hostname NAME]
EOF
    exit 2
}

OUTPUT="" SIZE_MB="" SUITE="" MIRROR="" CACHE_DIR="" AUTH_KEY=""
EXTRA_PACKAGES="" HOSTNAME_="suitcase"
while [ $# -gt 0 ]; do
    case $1 in
        --output) OUTPUT=${2:?}; shift 2 ;;
        --size-mb) SIZE_MB=${2:?}; shift 2 ;;
        --suite) SUITE=${2:?}; shift 2 ;;
        --mirror) MIRROR=${2:?}; shift 2 ;;
        --cache-dir) CACHE_DIR=${2:?}; shift 2 ;;
        --authorized-key) AUTH_KEY=${2:?}; shift 2 ;;
        --packages) EXTRA_PACKAGES=${2-}; shift 2 ;;
        --hostname) HOSTNAME_=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done

[ -n "$OUTPUT" ] || die "--output is required"
[ -n "$SIZE_MB" ] || die "--size-mb is required"
[ -n "$SUITE" ] || die "--suite is required"
[ -n "$MIRROR" ] || die "--mirror is required"
[ -n "$CACHE_DIR" ] || die "--cache-dir is required"
[ -n "$AUTH_KEY" ] || die "--authorized-key is required"
case $SIZE_MB in ''|*[!0-9]*) die "--size-mb must be a whole number of MiB" ;; esac
[ "$SIZE_MB" -ge 1024 ] || die "--size-mb must be at least 1024"
[ -r "$AUTH_KEY" ] || die "cannot read public key file: $AUTH_KEY"
grep -qE '^(ssh-|ecdsa-|sk-)' "$AUTH_KEY" || die "$AUTH_KEY does not look like an OpenSSH public key"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, losetup, mount)"
for tool in debootstrap losetup mkfs.ext4 extlinux mount umount chroot; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool"
done
MBR_BIN=""
for f in /usr/lib/syslinux/mbr/mbr.bin /usr/share/syslinux/mbr.bin /usr/lib/syslinux/mbr.bin; do
    if [ -f "$f" ]; then MBR_BIN=$f; break; fi
done
[ -n "$MBR_BIN" ] || die "syslinux mbr.bin not found (install syslinux-common)"

INCLUDE=$(IFS=,; echo "${BASE_PACKAGES[*]}")
if [ -n "$EXTRA_PACKAGES" ]; then
    INCLUDE="$INCLUDE,$(printf '%s' "$EXTRA_PACKAGES" | tr -s ' ,' ',' | sed 's/^,//; s/,$//')"
fi

OUTPUT=$(realpath -m "$OUTPUT")
OUT_DIR=$(dirname "$OUTPUT")
mkdir -p "$OUT_DIR" "$CACHE_DIR"
CACHE_DIR=$(realpath "$CACHE_DIR")
TMP_OUT="$OUTPUT.tmp"

WORK=$(mktemp -d "$OUT_DIR/.debian-disk.XXXXXX")
ROOTFS="$WORK/rootfs"
MNT="$WORK/mnt"
LOOP=""
CHROOT_MOUNTS=()

cleanup() {
    local rc=$?
    set +e
    # Unmount in reverse order of mounting.
    local i
    for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${CHROOT_MOUNTS[$i]}" 2>/dev/null
    done
    if mountpoint -q "$MNT" 2>/dev/null; then
        umount "$MNT" || umount -l "$MNT"
    fi
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP"
    fi
    # Never follow into anything still mounted below $WORK.
    if ! grep -q " $WORK/" /proc/mounts; then
        rm -rf --one-file-system "$WORK"
    else
        log "warning: something is still mounted under $WORK; left in place"
    fi
    rm -f "$TMP_OUT"
    if [ "$rc" -ne 0 ]; then
        log "FAILED (exit $rc); nothing written to $OUTPUT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chroot_mount() {
    # chroot_mount TYPE SOURCE TARGET [options...]
    local type=$1 src=$2 target=$3
    shift 3
    # what the packages unpacked is not trusted to place a mount: a mount point that is a link
    # (or leads out of the tree) would put /proc or /dev over some other folder
    [ -L "$target" ] && die "$target is a link: refusing to mount there"
    case "$(realpath -m "$target")/" in
        "$(realpath -e "$ROOTFS")"/*) ;;
        *) die "$target leads out of $ROOTFS: refusing to mount there" ;;
    esac
    mkdir -p "$target"
    if [ "$type" = bind ]; then
        mount --bind "$src" "$target"
    else
        mount -t "$type" "$@" "$src" "$target"
    fi
    CHROOT_MOUNTS+=("$target")
}

chroot_umount_all() {
    local i
    for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${CHROOT_MOUNTS[$i]}" || umount -l "${CHROOT_MOUNTS[$i]}"
    done
    CHROOT_MOUNTS=()
}

# le32 N: N as four little-endian bytes, in printf escape form.
le32() {
    local n=$1
    printf '\\%03o\\%03o\\%03o\\%03o' \
        $((n & 255)) $(((n >> 8) & 255)) $(((n >> 16) & 255)) $(((n >> 24) & 255))
}

# write_mbr_partition DISK START_SECTOR SECTORS: a DOS partition table with a
# single active Linux (0x83) partition, without needing sfdisk/parted.
# CHS fields hold the "use LBA" marker (FE FF FF).
write_mbr_partition() {
    local disk=$1 start=$2 count=$3 entry sig
    entry="\\200\\376\\377\\377\\203\\376\\377\\377$(le32 "$start")$(le32 "$count")"
    sig=$(le32 $(( (RANDOM << 16) ^ RANDOM )))
    # shellcheck disable=SC2059 # the format holds only escapes we built
    printf "$sig" | dd of="$disk" bs=1 seek=440 conv=notrunc status=none
    # shellcheck disable=SC2059
    printf "$entry" | dd of="$disk" bs=1 seek=446 conv=notrunc status=none
    printf '\125\252' | dd of="$disk" bs=1 seek=510 conv=notrunc status=none
}

in_chroot() {
    LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"
}

START=$SECONDS

# --- 1. debootstrap -------------------------------------------------------
log "debootstrap $SUITE (variant minbase) into $ROOTFS"
log "packages: $INCLUDE"
mkdir -p "$ROOTFS"
debootstrap --variant=minbase --merged-usr --cache-dir="$CACHE_DIR" \
    --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log" >&2
    if [ -f "$ROOTFS/debootstrap/debootstrap.log" ]; then
        log "last lines of $ROOTFS/debootstrap/debootstrap.log:"
        tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    fi
    die "debootstrap failed (see the lines above)"
}
log "debootstrap done after $((SECONDS - START)) s"

# --- 2. configure the tree --------------------------------------------------
log "configuring the root file system"
chroot_mount proc proc "$ROOTFS/proc"
chroot_mount sysfs sysfs "$ROOTFS/sys"
chroot_mount bind /dev "$ROOTFS/dev"
chroot_mount devpts devpts "$ROOTFS/dev/pts" -o gid=5,mode=620

# apt sources: the mirror given at build time.
cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
EOF

echo "$HOSTNAME_" > "$ROOTFS/etc/hostname"
cat > "$ROOTFS/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOSTNAME_

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF

cat > "$ROOTFS/etc/fstab" <<'EOF'
# <file system>	<mount point>	<type>	<options>		<dump>	<pass>
LABEL=root	/		ext4	errors=remount-ro	0	1
EOF
# `>` keeps the mode a file already had (debootstrap copies the host's /etc/hostname, which
# may be anything): what Suitcase writes has the mode specs/explained.yaml declares
chmod 0644 "$ROOTFS/etc/apt/sources.list" "$ROOTFS/etc/hostname" "$ROOTFS/etc/hosts" \
    "$ROOTFS/etc/fstab"

# Network: eth0 on DHCP through ifupdown (kernel line has net.ifnames=0).
mkdir -p "$ROOTFS/etc/network/interfaces.d"
cat > "$ROOTFS/etc/network/interfaces" <<'EOF'
# The loopback network interface
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
EOF
cat > "$ROOTFS/etc/network/interfaces.d/eth0" <<'EOF'
allow-hotplug eth0
iface eth0 inet dhcp
EOF

# Locale: C.UTF-8 by default, en_US.UTF-8 generated as well.
if [ -f "$ROOTFS/etc/locale.gen" ]; then
    sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$ROOTFS/etc/locale.gen"
    in_chroot locale-gen >/dev/null
fi
echo 'LANG=C.UTF-8' > "$ROOTFS/etc/default/locale"
ln -sf /usr/share/zoneinfo/Etc/UTC "$ROOTFS/etc/localtime"
echo 'Etc/UTC' > "$ROOTFS/etc/timezone"

# Root: password locked, login by the given key only.
in_chroot passwd -l root >/dev/null
install -d -m 0700 "$ROOTFS/root/.ssh"
install -m 0600 "$AUTH_KEY" "$ROOTFS/root/.ssh/authorized_keys"
chown -R 0:0 "$ROOTFS/root/.ssh"

# sshd: root by key only.
mkdir -p "$ROOTFS/etc/ssh/sshd_config.d"
cat > "$ROOTFS/etc/ssh/sshd_config.d/50-suitcase.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
# Host keys are deleted by the cleanup stage: make sshd regenerate them
# before its own config test (hence the reset of ExecStartPre).
mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
cat > "$ROOTFS/etc/systemd/system/ssh.service.d/10-suitcase-hostkeys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
# Keys generated inside the bootstrap are shared by every image made from it.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*

# cloud-init installed but disabled; derived AWS stages enable it.
mkdir -p "$ROOTFS/etc/cloud"
touch "$ROOTFS/etc/cloud/cloud-init.disabled"

# Serial getty is started by systemd from console=ttyS0 on the kernel line.

# Empty machine-id: systemd creates one at first boot.
: > "$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"

# Kernel and initramfs.
KVER=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$KVER" ] || die "no kernel found in $ROOTFS/boot (is linux-image-amd64 in the package list?)"
if [ ! -f "$ROOTFS/boot/initrd.img-$KVER" ]; then
    log "creating initramfs for $KVER"
    in_chroot update-initramfs -c -k "$KVER" >/dev/null
fi
[ -f "$ROOTFS/boot/initrd.img-$KVER" ] || die "no initramfs for $KVER"
log "kernel $KVER"

in_chroot apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
chroot_umount_all

# --- 3. disk image ---------------------------------------------------------
log "creating ${SIZE_MB} MiB disk $TMP_OUT"
rm -f "$TMP_OUT"
truncate -s "${SIZE_MB}M" "$TMP_OUT"
write_mbr_partition "$TMP_OUT" "$PART_START_SECTOR" \
    "$((SIZE_MB * 1024 * 1024 / SECTOR - PART_START_SECTOR))"

OFFSET=$((PART_START_SECTOR * SECTOR))
PART_BYTES=$((SIZE_MB * 1024 * 1024 - OFFSET))
LOOP=$(losetup --find --show -o "$OFFSET" --sizelimit "$PART_BYTES" "$TMP_OUT")
log "partition attached at $LOOP (offset $OFFSET, $PART_BYTES bytes)"

mkfs.ext4 -q -F -O ^64bit,^metadata_csum -L root "$LOOP"
mkdir -p "$MNT"
mount "$LOOP" "$MNT"

log "copying the tree into the file system"
cp -a "$ROOTFS/." "$MNT/"

# --- 4. boot loader --------------------------------------------------------
log "installing extlinux"
mkdir -p "$MNT/boot/extlinux"
cat > "$MNT/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 1
SERIAL 0 115200

LABEL debian
    LINUX /boot/vmlinuz-$KVER
    INITRD /boot/initrd.img-$KVER
    APPEND root=LABEL=root ro net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200n8
EOF
extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
sync
umount "$MNT"
losetup -d "$LOOP"
LOOP=""

dd if="$MBR_BIN" of="$TMP_OUT" bs=440 count=1 conv=notrunc status=none

mv -f "$TMP_OUT" "$OUTPUT"
log "wrote $OUTPUT (${SIZE_MB} MiB, kernel $KVER) in $((SECONDS - START)) s"
