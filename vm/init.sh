#!/bin/busybox sh
# stackquake initramfs /init: load the 9p stack, mount the host's / read-only
# and hand over to `stackquake vm guest-init` (passed after the kernel
# command line's "--", arriving here as "$@").
bb=/bin/busybox

fail() {
	echo "stackquake-initramfs: $*" >/dev/console
	# Powering off ends QEMU (-no-reboot); the host reports BootFailed with
	# this console.
	$bb poweroff -f
}

# The modules in dependency order, one name per line (written by the host
# from modules.dep).
while read -r m; do
	$bb insmod "/modules/$m.ko" || fail "insmod $m failed"
done </modules/order

# cache=loose: the root is read-only and nobody else changes it during a
# run, so caching dentries and pages saves 9p round trips on every exec.
$bb mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=@MSIZE@ \
	sqroot /newroot || fail "mounting the host root over 9p failed"

[ "$#" -gt 0 ] || fail "no guest init command after -- on the kernel command line"
exec $bb switch_root /newroot "$@"
