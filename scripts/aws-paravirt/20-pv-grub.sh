#!/usr/bin/env bash
# EC2 paravirtual: a PV-GRUB (grub legacy) menu. Amazon's PV-GRUB kernel
# (hd0 variant) reads /boot/grub/menu.lst from the unpartitioned root disk
# that Suitcase extracts from this image's root partition.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

kver=$(newest_kernel)
[ -n "$kver" ] || fail "no kernel found under /boot"
initrd=$(initramfs_of "$kver")
[ -f "$initrd" ] || fail "no initramfs $initrd"

# Root by label when it has ours, else by UUID (both survive the move to
# an unpartitioned disk).
label=$(findmnt -n -o LABEL / 2>/dev/null || true)
if [ "$label" = root ]; then
    root_spec=LABEL=root
else
    uuid=$(findmnt -n -o UUID / 2>/dev/null || true)
    [ -n "$uuid" ] || uuid=$(blkid -s UUID -o value "$(findmnt -n -o SOURCE /)")
    [ -n "$uuid" ] || fail "cannot find the root file system's UUID"
    root_spec=UUID=$uuid
fi
fstype=$(findmnt -n -o FSTYPE /)
case $fstype in
    ext2|ext3|ext4) ;;
    *) say "warning: root is $fstype; PV-GRUB (grub legacy) reads only ext2/3/4" ;;
esac

# Arguments the master sets for the disk and the kernel log (elevator=noop on EL6/7,
# printk.time=1 on EL6) stay: this menu replaces the master's kernel line, not its meaning.
keep=""
read -r -a cmdline < /proc/cmdline
for arg in "${cmdline[@]}"; do
    case $arg in elevator=*|printk.time=*) keep="$keep $arg" ;; esac
done

mkdir -p /boot/grub
say "/boot/grub/grub.conf: kernel $kver, root=$root_spec net.ifnames=0 biosdevname=0 console=hvc0$keep"
cat > /boot/grub/grub.conf <<CONF
default 0
timeout 1

title $SUITCASE_OS ($kver)
    root (hd0)
    kernel /boot/vmlinuz-$kver root=$root_spec ro net.ifnames=0 biosdevname=0 console=hvc0$keep
    initrd $initrd
CONF
chmod 0644 /boot/grub/grub.conf
ln -sfn grub.conf /boot/grub/menu.lst

# No getty unit to add: systemd's getty generator (and EL6's upstart) start
# one on the console named by console=hvc0.
