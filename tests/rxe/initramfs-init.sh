#!/bin/busybox sh
# /init of the rxe test guest's initramfs (busybox ash, not bash).
#
# Loads the modules listed in /modules.list, mounts the host's / read-only
# over 9p (tag "host") at /host and the run's writable output directory
# (tag "out") at the same path inside it, then runs the harness's
# guest.sh (bash, from the host tree) in a chroot and powers off.
# rxe-vm.sh builds this into the initramfs; changing this file changes the
# cache key, so the next run rebuilds the image.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

say() { echo "rxe-init: $*" > /dev/console; }

halt_now() {
	sync
	poweroff -f
	reboot -f
}

role=single
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rxe_role=*) role=${arg#rxe_role=} ;;
	esac
done

while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod" 2>/dev/null || say "insmod $mod failed"
done < /modules.list

mkdir -p /host /out /ovl
# 9p transport errors at boot are fatal; there is no verdict without it.
opts=trans=virtio,version=9p2000.L,msize=512000
if ! mount -t 9p -o "$opts,cache=loose,ro" host /host; then
	say "FATAL: cannot mount host / over 9p"
	halt_now
fi
if ! mount -t 9p -o "$opts" out /out; then
	say "FATAL: cannot mount the output share over 9p"
	halt_now
fi
if [ ! -r /out/.rxe/boot.env ]; then
	say "FATAL: /out/.rxe/boot.env missing"
	halt_now
fi
# Sets RXE_OUT (host path of the output dir) and RXE_LIB (host path of
# tests/rxe).
. /out/.rxe/boot.env
export RXE_OUT RXE_LIB

mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs -o size=75% tmpfs /ovl
# A writable /tmp that still shows the host's /tmp underneath (source or
# build trees may live there). Plain tmpfs if overlayfs refuses 9p.
mkdir -p /ovl/tmp-up /ovl/tmp-work
if ! mount -t overlay overlay \
	-o lowerdir=/host/tmp,upperdir=/ovl/tmp-up,workdir=/ovl/tmp-work /host/tmp 2>/dev/null; then
	say "overlay on /tmp failed; host /tmp hidden by a tmpfs"
	mount -t tmpfs tmpfs /host/tmp
fi
mkdir -p "/host$RXE_OUT" 2>/dev/null
if ! mount --move /out "/host$RXE_OUT"; then
	say "FATAL: cannot place the output share at $RXE_OUT"
	halt_now
fi

echo "booted $(cut -d' ' -f1 /proc/uptime)" >> "/host$RXE_OUT/.rxe/$role.stages"
chroot /host /bin/bash "$RXE_LIB/guest.sh" "$role" < /dev/console > /dev/console 2>&1
say "guest.sh exited $?"
halt_now
