#!/usr/bin/env bash
# Serial console on ttyS0 (kernel messages and a login prompt).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "kernel line: console=tty0 console=ttyS0,115200n8"
kernel_args "console" "console=tty0 console=ttyS0,115200n8"

case $SUITCASE_FAMILY in
debian)
    conf=/boot/extlinux/extlinux.conf
    if [ -f "$conf" ] && ! grep -qiE '^[[:space:]]*serial[[:space:]]' "$conf"; then
        sed -i '1i SERIAL 0 115200' "$conf"
    fi
    if [ -f /etc/default/grub ]; then
        sed -i -E '/^GRUB_(TERMINAL|SERIAL_COMMAND)=/d' /etc/default/grub
        printf '%s\n' 'GRUB_TERMINAL="console serial"' \
            'GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"' >> /etc/default/grub
        if [ -d /boot/grub ] && have update-grub; then update-grub >/dev/null 2>&1; fi
    fi
    systemctl enable serial-getty@ttyS0.service
    ;;
el)
    if [ "$SUITCASE_MAJOR" -ge 7 ]; then
        sed -i -E '/^GRUB_(TERMINAL|TERMINAL_OUTPUT|SERIAL_COMMAND)=/d' /etc/default/grub
        printf '%s\n' 'GRUB_TERMINAL="console serial"' \
            'GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"' >> /etc/default/grub
        for cfg in /boot/grub2/grub.cfg /boot/efi/EFI/*/grub.cfg; do
            [ -f "$cfg" ] && grub2-mkconfig -o "$cfg" >/dev/null 2>&1
        done
        systemctl enable serial-getty@ttyS0.service
    else
        # grub legacy: serial terminal; upstart starts a getty on ttyS0
        # from console= on the kernel line; root may log in there.
        if [ -f /boot/grub/grub.conf ] && ! grep -q '^serial ' /boot/grub/grub.conf; then
            sed -i '1i serial --unit=0 --speed=115200\nterminal --timeout=5 serial console' /boot/grub/grub.conf
            sed -i '/^splashimage=/d; /^hiddenmenu/d' /boot/grub/grub.conf
        fi
        grep -qx ttyS0 /etc/securetty || echo ttyS0 >> /etc/securetty
    fi
    ;;
*) fail "unknown family $SUITCASE_FAMILY" ;;
esac
