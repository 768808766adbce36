#!/bin/bash
# Runs inside the rxe test guest, chrooted into the host's read-only /.
# Called by the initramfs /init as: guest.sh ROLE   (ROLE: single|dst|src)
#
# Sets up eth0 + rxe0 (and eth1 + rxe1 with RXE_NICS=2), then runs the caller's command ($OUT/.rxe/ROLE.cmd)
# with its output in the log file and its exit code in the rc file:
#   single: $OUT/log, $OUT/rc      pair: $OUT/ROLE.log, $OUT/ROLE.rc
# Writes progress to $OUT/.rxe/ROLE.stages ("stage guest-uptime").
set -u
role=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LANG=C.UTF-8 TERM=dumb

# RXE_OUT, RXE_LIB, RXE_TIMEOUT, RXE_CWD, RXE_READY, RXE_READY_TIMEOUT,
# RXE_SRC_DELAY, RXE_ADDR_<role>, RXE_PEER_<role>, RXE_NICS, RXE_ADDR2_<role>,
# RXE_PEER2_<role>
# shellcheck source=/dev/null
. "$RXE_OUT/.rxe/guest.env"
meta=$RXE_OUT/.rxe

case $role in
single) log=$RXE_OUT/log rc_file=$RXE_OUT/rc ;;
dst | src) log=$RXE_OUT/$role.log rc_file=$RXE_OUT/$role.rc ;;
*) echo "guest.sh: bad role $role" >&2; exit 2 ;;
esac

uptime_s() { cut -d' ' -f1 /proc/uptime; }
stage() { echo "$1 $(uptime_s)" >> "$meta/$role.stages"; }
# Harness failures before the command runs: rc 125, reason in the log.
fail() {
	echo "rxe-vm guest ($role): $*" | tee -a "$log" >&2
	ip -d link show >> "$log" 2>&1
	rdma link show >> "$log" 2>&1
	dmesg | tail -n 30 >> "$log" 2>&1
	echo 125 > "$rc_file"
	sync
	exit 125
}

: > "$log"
ulimit -l unlimited || fail "ulimit -l unlimited failed"

addr_var=RXE_ADDR_$role peer_var=RXE_PEER_$role
addr=${!addr_var}
peer=${!peer_var:-}

ip link set lo up
# The harness gives NIC i the MAC 52:54:00:99:0i:xx; the kernel names NICs
# in probe order, which behind PCI expander bridges (--numa 2) need not be
# that order. Name them after their MAC: ethI is NIC i.
for n in /sys/class/net/eth*; do
	[ -e "$n" ] || continue
	ip link set dev "${n##*/}" name "tmp${n##*/}" || fail "cannot rename ${n##*/}"
done
for n in /sys/class/net/tmpeth*; do
	[ -e "$n" ] || continue
	mac=$(cat "$n/address")
	idx=${mac:13:1}
	ip link set dev "${n##*/}" name "eth$idx" || fail "cannot name NIC $mac eth$idx"
done
# rail NETDEV DEV ADDR [PEER]: the NIC up with ADDR/24 and mtu 9000, an rxe
# device on it with its IPv4 RoCEv2 GID (index 1), port ACTIVE, the peer
# answering pings over it.
rail() {
	local nd=$1 dev=$2 a=$3 p=${4:-} g= ok=
	ip link set "$nd" mtu 9000 || fail "cannot set $nd mtu 9000"
	ip addr add "$a/24" dev "$nd" || fail "cannot add $a to $nd"
	ip link set "$nd" up || fail "cannot bring $nd up"
	rdma link add "$dev" type rxe netdev "$nd" || fail "rdma link add $dev failed"

	# The IPv4 RoCEv2 GID (index 1) appears once rxe has seen the address.
	local gid=/sys/class/infiniband/$dev/ports/1/gids/1
	for _ in $(seq 100); do
		g=$(cat "$gid" 2>/dev/null || true)
		[ -n "$g" ] && [ "$g" != 0000:0000:0000:0000:0000:0000:0000:0000 ] && break
		sleep 0.1
	done
	[ "$g" != 0000:0000:0000:0000:0000:0000:0000:0000 ] || fail "$dev GID index 1 never appeared"
	for _ in $(seq 100); do
		grep -q ACTIVE "/sys/class/infiniband/$dev/ports/1/state" && break
		sleep 0.1
	done
	grep -q ACTIVE "/sys/class/infiniband/$dev/ports/1/state" || fail "$dev port not ACTIVE"

	if [ -n "$p" ]; then
		# busybox's ping: iputils-ping need not be installed on the host.
		for _ in $(seq 60); do
			if busybox ping -c 1 -W 1 "$p" > /dev/null 2>&1; then ok=1; break; fi
			sleep 0.5
		done
		[ -n "$ok" ] || fail "peer $p unreachable over $nd"
	fi
}
rail eth0 rxe0 "$addr" "$peer"
if [ "${RXE_NICS:-1}" = 2 ]; then
	addr2_var=RXE_ADDR2_$role peer2_var=RXE_PEER2_$role
	addr2=${!addr2_var}
	peer2=${!peer2_var:-}
	rail eth1 rxe1 "$addr2" "$peer2"
	export RXE_DEV2=rxe1 RXE_NETDEV2=eth1 RXE_ADDR2=$addr2
	[ -n "$peer2" ] && export RXE_PEER_ADDR2=$peer2
fi
stage rxe-up

export RXE_DEV=rxe0 RXE_GID_INDEX=1 RXE_NETDEV=eth0 RXE_ADDR=$addr RXE_ROLE=$role
export OUT=$RXE_OUT RXE_LIB
[ -n "$peer" ] && export RXE_PEER_ADDR=$peer
# Caller's --env settings.
# shellcheck source=/dev/null
[ -r "$meta/user.env" ] && . "$meta/user.env"

# The command gets what is left of the time budget, less a margin to write
# the verdict and power off.
left=$(awk -v t="$RXE_TIMEOUT" '{ l = int(t - $1 - 5); print (l < 1 ? 1 : l) }' /proc/uptime)
deadline_reached() { awk -v t="$RXE_TIMEOUT" '{ exit !($1 > t - 5) }' /proc/uptime; }

if [ "$role" = src ]; then
	case $RXE_READY in
	none) ;;
	delay) sleep "$RXE_SRC_DELAY" ;;
	*)
		waited=0
		while [ ! -e "$RXE_OUT/dst.ready" ]; do
			if [ -e "$RXE_OUT/dst.rc" ]; then
				echo "rxe-vm: note: dst exited (rc $(cat "$RXE_OUT/dst.rc")) before it was ready" >> "$log"
				break
			fi
			if [ "$waited" -ge $((RXE_READY_TIMEOUT * 10)) ] || deadline_reached; then
				echo "rxe-vm: note: dst not ready after ${RXE_READY_TIMEOUT}s; starting anyway" >> "$log"
				break
			fi
			sleep 0.1
			waited=$((waited + 1))
		done
		;;
	esac
	left=$(awk -v t="$RXE_TIMEOUT" '{ l = int(t - $1 - 5); print (l < 1 ? 1 : l) }' /proc/uptime)
fi

cd "$RXE_CWD" 2>/dev/null || cd "$RXE_OUT" || true
stage run
# shellcheck source=tests/rxe/guest-lib.sh
timeout -k 3 "$left" bash -c '. "$RXE_LIB/guest-lib.sh"; . "$1"' rxe-cmd "$meta/$role.cmd" \
	>> "$log" 2>&1 < /dev/null &
cmd_pid=$!

if [ "$role" = dst ] && [ "$RXE_READY" = auto ]; then
	# Ready = the first listening TCP socket or rdma_cm LISTEN id appears
	# (nothing else in this guest listens), or the command calls rxe_ready.
	(
		. "$RXE_LIB/guest-lib.sh"
		while kill -0 "$cmd_pid" 2> /dev/null; do
			if [ -e "$RXE_OUT/dst.ready" ] || rxe_any_listener; then
				touch "$RXE_OUT/dst.ready"
				exit 0
			fi
			sleep 0.1
		done
	) &
fi

wait "$cmd_pid"
rc=$?
[ "$rc" -eq 124 ] && echo "rxe-vm: command timed out (${left}s left of the ${RXE_TIMEOUT}s budget)" >> "$log"
echo "$rc" > "$rc_file"
stage "done $rc"
sync
exit 0
