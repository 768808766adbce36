#!/bin/bash
# rxe-vm.sh: run commands against soft-RoCE (rdma_rxe) inside QEMU guests.
# See --help and tests/rxe/README.md.
set -euo pipefail

RXE_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}

usage() {
	cat << EOF
Usage:
  $PROG single [OPTIONS] -- CMD [ARGS...]
  $PROG single [OPTIONS] --sh 'SHELL STRING'
  $PROG pair   [OPTIONS] --dst 'SHELL STRING' --src 'SHELL STRING'
  $PROG check          exit 0 if the prerequisites are there, 77 (naming what
                       is missing) if not
  $PROG initramfs      build (or find) the cached initramfs and print its path

single: boots one guest (2 vCPU) with rxe0 on eth0 and runs CMD (argv, no
  shell) or the --sh string (bash) in it; client and server may both use rxe0
  (rxe loops back internally). Output: DIR/log, exit code: DIR/rc.
pair: boots guest A (dst, 10.99.0.1) and guest B (src, 10.99.0.2), 1 vCPU
  each, joined by a QEMU socket netdev on 127.0.0.1:<free port>. The dst
  string starts first; the src string starts once dst is ready (see --ready).
  Outputs: DIR/dst.log DIR/dst.rc DIR/src.log DIR/src.rc.

The guest sees this machine's / read-only (so absolute host paths of
binaries work), a writable DIR at the same path, and a writable /tmp (a
tmpfs over the host's /tmp). Commands run as root in a chroot, with
\`ulimit -l unlimited\`, cwd = the caller's cwd, stdin /dev/null, and:
  RXE_DEV=rxe0 RXE_GID_INDEX=1 RXE_NETDEV=eth0 RXE_ADDR=<own IPv4>
  RXE_PEER_ADDR=<other guest's IPv4> (pair only) RXE_ROLE=single|dst|src
  with --nics 2 also RXE_DEV2=rxe1 RXE_NETDEV2=eth1 RXE_ADDR2 RXE_PEER_ADDR2
  (10.99.1.1 dst/single, 10.99.1.2 src)
  OUT=<DIR>  RXE_LIB=<this directory>
plus the functions of guest-lib.sh: rxe_ready, rxe_wait_listen PORT [SEC],
rxe_retry TRIES DELAY CMD..., rxe_tcp_listening PORT, rxe_cm_listening PORT.

Options:
  --out DIR          results directory (created; old results in it removed).
                     Default: a new directory under the cache directory.
  --timeout SEC      budget per guest from power-on (default: single 120,
                     pair 180); the command is killed ~5 s before it, the
                     VM 15 s after it. Timeout exit code: 124.
  --mem MB           guest memory (default 1024)
  --cpus N           vCPUs per guest (default: single 2, pair 1; 2 with --numa 2)
  --nics N           1 (default) or 2: a second NIC (eth1) with its own rxe1,
                     10.99.1.0/24; in a pair on its own socket netdev. The
                     command gets RXE_DEV2=rxe1 RXE_NETDEV2=eth1 RXE_ADDR2
                     and (pair) RXE_PEER_ADDR2
  --numa N           1 (default) or 2: two NUMA nodes (vCPU 0 and half the
                     memory on node 0, vCPU 1 and the rest on node 1); NIC i
                     sits behind a PCI expander bridge on node i % 2
  --env NAME=VALUE   export NAME=VALUE to the command(s) (repeatable)
  --ready MODE       pair: when src starts. auto (default): when the first
                     TCP listening socket or rdma_cm LISTEN id appears in dst
                     (or dst calls rxe_ready); manual: only when dst calls
                     rxe_ready; delay: --src-delay seconds after dst's guest
                     is up; none: at once. If dst exits first, or nothing
                     is ready after --ready-timeout, src starts anyway.
  --ready-timeout SEC  (default 60)   --src-delay SEC  (default 2)
  --cache DIR        where the initramfs is cached (default: \$RXE_CACHE_DIR,
                     else <repo>/build/rxe-cache)
  -q, --quiet        do not print the logs at the end
  -h, --help

Exit status: the command's (pair: src's if non-zero, else dst's); 124 on
timeout; 125 if the harness or guest failed before/around the command (the
console tail is printed); 77 if prerequisites are missing; 2 on bad usage.
Environment: RXE_CACHE_DIR, RXE_KERNEL_VERSION (force a kernel version),
RXE_QEMU_CPU (default qemu64; 'max' makes rxe ~10x slower under TCG),
RXE_NO_PVH=1 (boot the bzImage instead of the extracted vmlinux).
EOF
}

log() { echo "[rxe-vm] $*" >&2; }
skip() {
	echo "SKIP: rxe-vm: $*" >&2
	exit 77
}
usage_err() {
	echo "$PROG: $*" >&2
	echo "Try '$PROG --help'." >&2
	exit 2
}
# Single-quote a string for a POSIX shell.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# Escape commas for QEMU option values.
qesc() { printf '%s' "${1//,/,,}"; }

# ---------------------------------------------------------------------------
# Prerequisites

KVER=
KERNEL=
find_kernel() {
	local f v
	if [ -n "${RXE_KERNEL_VERSION:-}" ]; then
		v=$RXE_KERNEL_VERSION
		[ -e "/boot/vmlinuz-$v" ] || skip "no /boot/vmlinuz-$v (RXE_KERNEL_VERSION)"
		[ -n "$(find "/lib/modules/$v" -name 'rdma_rxe.ko*' -print -quit 2> /dev/null)" ] ||
			skip "no rdma_rxe.ko under /lib/modules/$v"
		KVER=$v
	else
		while read -r f; do
			v=${f#/boot/vmlinuz-}
			if [ -n "$(find "/lib/modules/$v" -name 'rdma_rxe.ko*' -print -quit 2> /dev/null)" ]; then
				KVER=$v
				break
			fi
		done < <(ls -1 /boot/vmlinuz-*-amd64 2> /dev/null | sort -rV)
		[ -n "$KVER" ] || skip "no /boot/vmlinuz-*-amd64 with rdma_rxe.ko under /lib/modules/<ver> (apt-get install linux-image-amd64)"
	fi
	KERNEL=/boot/vmlinuz-$KVER
	[ -r "$KERNEL" ] || skip "$KERNEL is not readable (run as root)"
}

# has_interp FILE: true if the ELF64 FILE has a PT_INTERP program header,
# i.e. is dynamically linked (the static busybox still contains the string
# "ld-linux", so grepping for it is not enough).
has_interp() {
	local f=$1 phoff phentsize phnum i type
	phoff=$(od -An -t u8 -j 32 -N 8 "$f" | tr -d ' ')
	phentsize=$(od -An -t u2 -j 54 -N 2 "$f" | tr -d ' ')
	phnum=$(od -An -t u2 -j 56 -N 2 "$f" | tr -d ' ')
	for ((i = 0; i < phnum; i++)); do
		type=$(od -An -t u4 -j $((phoff + i * phentsize)) -N 4 "$f" | tr -d ' ')
		[ "$type" = 3 ] && return 0
	done
	return 1
}

BUSYBOX=
check_prereqs() {
	local missing=() p
	command -v qemu-system-x86_64 > /dev/null || missing+=("qemu-system-x86_64 (qemu-system-x86)")
	command -v timeout > /dev/null || missing+=("timeout (coreutils)")
	command -v modprobe > /dev/null || [ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] ||
		missing+=("modprobe (kmod)")
	[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || [ -x /usr/bin/ip ] || missing+=("ip (iproute2)")
	[ -x /usr/bin/rdma ] || [ -x /usr/sbin/rdma ] || [ -x /sbin/rdma ] || missing+=("rdma (iproute2)")
	command -v ss > /dev/null || missing+=("ss (iproute2)")
	BUSYBOX=
	for p in /bin/busybox /usr/bin/busybox; do
		if [ -x "$p" ] && ! has_interp "$p"; then
			BUSYBOX=$p
			break
		fi
	done
	[ -n "$BUSYBOX" ] || missing+=("a static busybox (busybox-static)")
	[ -e /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so ] ||
		[ -n "$(ls /usr/lib/*/libibverbs/librxe-rdmav*.so 2> /dev/null)" ] ||
		missing+=("the rxe verbs provider (ibverbs-providers)")
	if [ "${#missing[@]}" -gt 0 ]; then
		skip "missing: $(
			IFS=';'
			echo "${missing[*]}"
		)"
	fi
	find_kernel
}

# ---------------------------------------------------------------------------
# Initramfs: busybox-static + the modules (with dependencies resolved by
# modprobe for the chosen kernel) + initramfs-init.sh as /init. Cached under
# the cache dir, keyed by kernel version and the inputs' contents.

# Modules wanted in the guest; their dependencies come from modprobe.
# crc32_generic: rxe's ICRC needs the "crc32" shash and nothing pulls it in
# (without it `rdma link add` fails with ENOENT).
REQUIRED_MODS=(crc32_generic virtio_pci virtio_net 9pnet_virtio 9p rdma_rxe rdma_ucm)
OPTIONAL_MODS=(overlay tls ctr ghash_generic gcm aesni_intel ghash_clmulni_intel)

CACHE=
INITRD=
modprobe_cmd() { PATH=$PATH:/usr/sbin:/sbin modprobe "$@"; }

build_initramfs() {
	local m out paths=() seen=" " p key stage base
	for m in "${REQUIRED_MODS[@]}" "${OPTIONAL_MODS[@]}"; do
		if ! out=$(modprobe_cmd -S "$KVER" --show-depends "$m" 2>&1); then
			case " ${OPTIONAL_MODS[*]} " in
			*" $m "*) continue ;;
			esac
			skip "kernel $KVER: cannot resolve module $m: $out"
		fi
		while read -r p; do
			case "$seen" in *" $p "*) continue ;; esac
			seen+="$p "
			paths+=("$p")
		done < <(awk '$1 == "insmod" { print $2 }' <<< "$out")
	done
	key=$({
		echo "$KVER"
		printf '%s\n' "${paths[@]}"
		cat "$RXE_LIB/initramfs-init.sh"
		stat -c '%s %Y' "$BUSYBOX" "${paths[@]}"
	} | sha256sum | cut -c1-16)
	mkdir -p "$CACHE"
	INITRD=$CACHE/initramfs-$KVER-$key.cpio
	[ -s "$INITRD" ] && return 0

	log "building initramfs for $KVER (${#paths[@]} modules)"
	stage=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
	mkdir -p "$stage"/{bin,dev,proc,sys,lib/modules}
	cp "$BUSYBOX" "$stage/bin/busybox"
	cp "$RXE_LIB/initramfs-init.sh" "$stage/init"
	chmod 755 "$stage/init" "$stage/bin/busybox"
	: > "$stage/modules.list"
	for p in "${paths[@]}"; do
		base=${p##*/}
		case $p in
		*.ko.xz) base=${base%.xz}; xz -dc "$p" > "$stage/lib/modules/$base" ;;
		*.ko.zst) base=${base%.zst}; zstd -qdc "$p" > "$stage/lib/modules/$base" ;;
		*.ko.gz) base=${base%.gz}; gzip -dc "$p" > "$stage/lib/modules/$base" ;;
		*) cp "$p" "$stage/lib/modules/$base" ;;
		esac
		echo "$base" >> "$stage/modules.list"
	done
	# Uncompressed: unpacking gzip under TCG costs more than reading it.
	(cd "$stage" && find . -mindepth 1 | "$BUSYBOX" cpio -o -H newc 2> /dev/null) > "$stage.cpio"
	mv -f "$stage.cpio" "$INITRD"
	rm -rf "$stage"
	# Old images for other kernels/inputs are left alone: they are small.
}

# The bzImage decompresses itself under TCG, which takes ~3 s per boot. An
# uncompressed vmlinux with the PVH ELF note (CONFIG_PVH=y) boots directly:
# extract it once (like the kernel's scripts/extract-vmlinux) and cache it.
# Falls back to the bzImage if that fails. RXE_NO_PVH=1 forces the bzImage.
extract_vmlinux() {
	local out=$1 magic tool off tmp
	for magic in 'FD377A585A00:xz' '28B52FFD:zstd' '1F8B0800:gzip' '1F8B0808:gzip'; do
		tool=${magic#*:}
		command -v "$tool" > /dev/null || continue
		while read -r off; do
			tmp=$out.tmp.$$
			tail -c "+$((off + 1))" "$KERNEL" | "$tool" -dc > "$tmp" 2> /dev/null || true
			if [ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
				mv -f "$tmp" "$out"
				return 0
			fi
			rm -f "$tmp"
		done < <(LC_ALL=C grep -obUaP "$(sed 's/\(..\)/\\x\1/g' <<< "${magic%%:*}")" "$KERNEL" |
			cut -d: -f1 | head -n 5)
	done
	return 1
}

BOOT_KERNEL=
prepare_kernel() {
	local vml
	BOOT_KERNEL=$KERNEL
	[ "${RXE_NO_PVH:-0}" = 1 ] && return 0
	grep -qs '^CONFIG_PVH=y' "/boot/config-$KVER" || return 0
	vml=$CACHE/vmlinux-$KVER-$(stat -c '%s-%Y' "$KERNEL")
	if [ ! -s "$vml" ] && ! extract_vmlinux "$vml"; then
		log "note: could not extract vmlinux from $KERNEL; booting the bzImage (slower)"
		return 0
	fi
	BOOT_KERNEL=$vml
}

# ---------------------------------------------------------------------------
# Guests

declare -A QPID=()   # role -> pid of `timeout qemu ...`
declare -A QSTART=() # role -> start time (s since epoch, fractional)
QMETA=

cleanup() {
	local r
	for r in "${!QPID[@]}"; do
		kill -TERM "${QPID[$r]}" 2> /dev/null || true
	done
}

# nic_args ROLE_BYTE NETDEV_SPEC... -> NIC_ARGS: one virtio-net NIC per
# netdev spec (ids n0, n1, ...; MAC 52:54:00:99:<nic>:<role byte>). With
# --numa 2 each node gets half the memory and one vCPU (the others on node
# 0), and NIC i sits behind a PCI expander bridge bound to node i % 2, so
# the guest's /sys/class/net/ethI/device/../numa_node names that node.
NIC_ARGS=()
nic_args() {
	local rb=$1 i=0 spec half
	shift
	NIC_ARGS=()
	if [ "$NUMA" = 2 ]; then
		half=$((MEM / 2))
		NIC_ARGS+=(-object "memory-backend-ram,id=m0,size=$((MEM - half))M"
			-object "memory-backend-ram,id=m1,size=${half}M"
			-numa "node,nodeid=0,cpus=0,memdev=m0"
			-numa "node,nodeid=1,cpus=1,memdev=m1")
		[ "$CPUS_NOW" -gt 2 ] && NIC_ARGS[5]="node,nodeid=0,cpus=0,cpus=2-$((CPUS_NOW - 1)),memdev=m0"
		NIC_ARGS+=(-device pxb,id=pxb0,bus=pci.0,bus_nr=16,numa_node=0
			-device pxb,id=pxb1,bus=pci.0,bus_nr=32,numa_node=1)
	fi
	for spec in "$@"; do
		NIC_ARGS+=(-netdev "$spec")
		if [ "$NUMA" = 2 ]; then
			NIC_ARGS+=(-device "virtio-net-pci,netdev=n$i,mac=52:54:00:99:0$i:$rb,bus=pxb$((i % 2))")
		else
			NIC_ARGS+=(-device "virtio-net-pci,netdev=n$i,mac=52:54:00:99:0$i:$rb")
		fi
		i=$((i + 1))
	done
}

# launch ROLE CPUS ROLE_BYTE NETDEV_SPEC...
launch() {
	local role=$1 cpus=$2 rb=$3
	shift 3
	CPUS_NOW=$cpus
	nic_args "$rb" "$@"
	rm -f "$QMETA/$role.console" "$QMETA/$role.qemu"
	QSTART[$role]=$(date +%s.%N)
	timeout -k 5 $((TIMEOUT + 15)) qemu-system-x86_64 \
		-nodefaults -machine pc,accel=tcg -cpu "${RXE_QEMU_CPU:-qemu64}" \
		-smp "$cpus" -m "$MEM" \
		-display none -monitor none -no-reboot \
		-serial "file:$(qesc "$QMETA/$role.console")" \
		-kernel "$(qesc "$BOOT_KERNEL")" -initrd "$(qesc "$INITRD")" \
		-append "console=ttyS0 quiet loglevel=4 panic=-1 rxe_role=$role" \
		-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$(qesc "$OUTDIR"),mount_tag=out,security_model=none,multidevs=remap" \
		"${NIC_ARGS[@]}" \
		< /dev/null > "$QMETA/$role.qemu" 2>&1 &
	QPID[$role]=$!
}

# Print where a guest got to (from its stages file) and its console tail.
report_guest() {
	local role=$1 rcf=$2 st
	st=$QMETA/$role.stages
	if [ -s "$st" ]; then
		log "$role: guest uptime at: $(tr '\n' ',' < "$st" | sed 's/,$//; s/,/, /g')"
	fi
	if [ ! -s "$rcf" ] || [ "$(cat "$rcf")" = 125 ]; then
		log "$role: ---- QEMU stderr ----"
		sed 's/^/  /' "$QMETA/$role.qemu" >&2 2> /dev/null || true
		log "$role: ---- console tail ($QMETA/$role.console) ----"
		tail -n 60 "$QMETA/$role.console" 2> /dev/null | sed 's/^/  /' >&2 || true
	fi
}

# verdict ROLE RCFILE QEMU_STATUS -> echo the exit code for this guest
verdict() {
	local role=$1 rcf=$2 qst=$3 rc
	if [ -s "$rcf" ]; then
		rc=$(cat "$rcf")
		[ "$rc" = 124 ] && log "$role: TIMEOUT: the command did not finish within the ${TIMEOUT}s budget"
	elif [ "$qst" = 124 ] || [ "$qst" = 137 ]; then
		log "$role: TIMEOUT: the guest did not finish within ${TIMEOUT}s (+15 s grace); no verdict"
		rc=124
		echo "$rc" > "$rcf"
	else
		log "$role: FAILED: QEMU exited ($qst) without a verdict (boot failure, guest crash, or stopped)"
		rc=125
		echo "$rc" > "$rcf"
	fi
	echo "$rc"
}

# Wait for every launched guest to exit; note when each one's rxe0 came up
# (host wall clock). If one guest dies without a verdict, the other cannot
# finish: stop it after a short grace.
declare -A QST=()   # role -> exit status of `timeout qemu`
declare -A QUP=()   # role -> seconds from launch to rxe0 up
wait_guests() {
	local r alive t_end='' now rcf
	while :; do
		alive=0
		now=$(date +%s.%N)
		for r in "${!QPID[@]}"; do
			rcf=$OUTDIR/$r.rc
			[ "$r" = single ] && rcf=$OUTDIR/rc
			if [ -z "${QUP[$r]:-}" ] && grep -qs '^rxe-up' "$QMETA/$r.stages"; then
				QUP[$r]=$(awk -v s="${QSTART[$r]}" -v e="$now" 'BEGIN { printf "%.1f", e - s }')
				log "$r: rxe0 up ${QUP[$r]} s after QEMU start"
			fi
			if kill -0 "${QPID[$r]}" 2> /dev/null; then
				alive=$((alive + 1))
				continue
			fi
			QST[$r]=0
			wait "${QPID[$r]}" || QST[$r]=$?
			unset "QPID[$r]"
			if [ ! -s "$rcf" ] && [ -z "$t_end" ]; then
				t_end=$(($(date +%s) + 5))
			fi
		done
		[ "$alive" -eq 0 ] && break
		if [ -n "$t_end" ] && [ "$(date +%s)" -ge "$t_end" ]; then
			log "a guest died without a verdict; stopping the other"
			cleanup
			t_end=$(($(date +%s) + 3600))
		fi
		sleep 0.2
	done
}

prepare_out() {
	[ -n "$OUTDIR" ] || OUTDIR=$(mkdir -p "$CACHE" && mktemp -d "$CACHE/run.XXXXXX")
	mkdir -p "$OUTDIR"
	OUTDIR=$(cd "$OUTDIR" && pwd -P)
	case $OUTDIR in
	*[[:space:]\'\"\\]*) usage_err "--out path must not contain spaces, quotes or backslashes" ;;
	/ | /proc* | /sys* | /dev*) usage_err "--out $OUTDIR is not a usable results directory" ;;
	esac
	QMETA=$OUTDIR/.rxe
	rm -rf "$QMETA"
	rm -f "$OUTDIR"/{log,rc,dst.log,dst.rc,dst.ready,src.log,src.rc}
	mkdir -p "$QMETA"
	{
		echo "RXE_OUT=$(shq "$OUTDIR")"
		echo "RXE_LIB=$(shq "$RXE_LIB")"
	} > "$QMETA/boot.env"
	{
		echo "RXE_OUT=$(shq "$OUTDIR")"
		echo "RXE_LIB=$(shq "$RXE_LIB")"
		echo "RXE_TIMEOUT=$TIMEOUT"
		echo "RXE_CWD=$(shq "$PWD")"
		echo "RXE_READY=$READY RXE_READY_TIMEOUT=$READY_TIMEOUT RXE_SRC_DELAY=$SRC_DELAY"
		echo "RXE_ADDR_single=10.99.0.1 RXE_ADDR_dst=10.99.0.1 RXE_ADDR_src=10.99.0.2"
		echo "RXE_PEER_dst=10.99.0.2 RXE_PEER_src=10.99.0.1"
		echo "RXE_NICS=$NICS"
		echo "RXE_ADDR2_single=10.99.1.1 RXE_ADDR2_dst=10.99.1.1 RXE_ADDR2_src=10.99.1.2"
		echo "RXE_PEER2_dst=10.99.1.2 RXE_PEER2_src=10.99.1.1"
	} > "$QMETA/guest.env"
	local kv
	: > "$QMETA/user.env"
	for kv in "${USER_ENV[@]+"${USER_ENV[@]}"}"; do
		[[ $kv == [A-Za-z_]*=* ]] || usage_err "--env wants NAME=VALUE, got: $kv"
		printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >> "$QMETA/user.env"
	done
}

print_log() {
	local title=$1 file=$2
	[ "$QUIET" = 1 ] && return 0
	echo "===== $title ($file) ====="
	if [ -e "$file" ]; then
		# shellcheck disable=SC1003 # sed: append a final newline if missing
		sed -e '$a\' "$file"
	else
		echo "(no log)"
	fi
}

run_single() {
	local rc
	if [ -n "$SH_STRING" ]; then
		printf '%s\n' "$SH_STRING" > "$QMETA/single.cmd"
	else
		printf '%q ' "${CMD[@]}" > "$QMETA/single.cmd"
		echo >> "$QMETA/single.cmd"
	fi
	# No link partner is needed for rxe loopback: a QEMU hub with one port
	# gives eth0 a carrier and sends nothing anywhere.
	local specs=(hubport,id=n0,hubid=0)
	[ "$NICS" = 2 ] && specs+=(hubport,id=n1,hubid=1)
	launch single "${CPUS:-2}" 01 "${specs[@]}"
	log "single: booting (kernel $KVER, out $OUTDIR, timeout ${TIMEOUT}s)"
	wait_guests
	rc=$(verdict single "$OUTDIR/rc" "${QST[single]}")
	report_guest single "$OUTDIR/rc"
	log "single: exit $rc, $(awk -v s="${QSTART[single]}" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s wall"
	print_log "guest log" "$OUTDIR/log"
	return "$rc"
}

# Start dst with a listening socket netdev per NIC, on free ports; retry on
# a port clash with a concurrent run.
PORT= PORT2=
free_port() {
	local p
	for _ in 1 2 3 4 5 6 7 8; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		[ -z "$(ss -Htln "sport = :$p" 2> /dev/null)" ] && [ "$p" != "$PORT" ] && break
	done
	echo "$p"
}
listening() { [ -n "$(ss -Htln "sport = :$1" 2> /dev/null)" ]; }
launch_dst() {
	local i specs
	for _ in 1 2 3 4 5 6 7 8; do
		PORT= PORT2=
		PORT=$(free_port)
		specs=("socket,id=n0,listen=127.0.0.1:$PORT")
		if [ "$NICS" = 2 ]; then
			PORT2=$(free_port)
			specs+=("socket,id=n1,listen=127.0.0.1:$PORT2")
		fi
		launch dst "${CPUS:-$DEF_PAIR_CPUS}" 01 "${specs[@]}"
		for ((i = 0; i < 100; i++)); do
			if listening "$PORT" && { [ -z "$PORT2" ] || listening "$PORT2"; }; then
				return 0
			fi
			kill -0 "${QPID[dst]}" 2> /dev/null || break
			sleep 0.05
		done
		if grep -qi 'in use' "$QMETA/dst.qemu" 2> /dev/null; then
			wait "${QPID[dst]}" 2> /dev/null || true
			unset 'QPID[dst]'
			continue
		fi
		kill -0 "${QPID[dst]}" 2> /dev/null && return 0
		log "dst: QEMU failed to start:"
		sed 's/^/  /' "$QMETA/dst.qemu" >&2
		return 1
	done
	log "dst: no free port for the socket netdev after 8 tries"
	return 1
}

run_pair() {
	local rc_dst rc_src
	printf '%s\n' "$DST_CMD" > "$QMETA/dst.cmd"
	printf '%s\n' "$SRC_CMD" > "$QMETA/src.cmd"
	launch_dst || exit 125
	local specs=("socket,id=n0,connect=127.0.0.1:$PORT")
	[ "$NICS" = 2 ] && specs+=("socket,id=n1,connect=127.0.0.1:$PORT2")
	launch src "${CPUS:-$DEF_PAIR_CPUS}" 02 "${specs[@]}"
	log "pair: booting dst (10.99.0.1) and src (10.99.0.2) on 127.0.0.1:$PORT${PORT2:+ and $PORT2 (10.99.1.0/24)} (kernel $KVER, out $OUTDIR, timeout ${TIMEOUT}s)"
	wait_guests
	rc_dst=$(verdict dst "$OUTDIR/dst.rc" "${QST[dst]}")
	rc_src=$(verdict src "$OUTDIR/src.rc" "${QST[src]}")
	report_guest dst "$OUTDIR/dst.rc"
	report_guest src "$OUTDIR/src.rc"
	log "pair: dst exit $rc_dst, src exit $rc_src, $(awk -v s="${QSTART[dst]}" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s wall"
	print_log "dst log" "$OUTDIR/dst.log"
	print_log "src log" "$OUTDIR/src.log"
	[ "$rc_src" != 0 ] && return "$rc_src"
	return "$rc_dst"
}

# ---------------------------------------------------------------------------
# Arguments

MODE=${1:-}
[ -n "$MODE" ] || {
	usage >&2
	exit 2
}
shift
case $MODE in
-h | --help | help)
	usage
	exit 0
	;;
single | pair | check | initramfs) ;;
*) usage_err "unknown mode '$MODE'" ;;
esac

OUTDIR='' TIMEOUT='' MEM=1024 CPUS='' NICS=1 NUMA=1 CPUS_NOW=1 READY=auto READY_TIMEOUT=60 SRC_DELAY=2 QUIET=0
SH_STRING='' DST_CMD='' SRC_CMD='' DST_SET='' SRC_SET=''
CACHE=${RXE_CACHE_DIR:-$RXE_LIB/../../build/rxe-cache}
USER_ENV=()
CMD=()
need() { [ "$#" -ge 2 ] || usage_err "$1 needs a value"; }
is_int() { [[ $2 =~ ^[0-9]+$ ]] || usage_err "$1 wants a number, got '$2'"; }
while [ "$#" -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--out) need "$@"; OUTDIR=$2; shift 2 ;;
	--timeout) need "$@"; is_int "$1" "$2"; TIMEOUT=$2; shift 2 ;;
	--mem) need "$@"; is_int "$1" "$2"; MEM=$2; shift 2 ;;
	--cpus) need "$@"; is_int "$1" "$2"; CPUS=$2; shift 2 ;;
	--nics) need "$@"; NICS=$2; shift 2
		case $NICS in 1 | 2) ;; *) usage_err "--nics wants 1 or 2, got '$NICS'" ;; esac ;;
	--numa) need "$@"; NUMA=$2; shift 2
		case $NUMA in 1 | 2) ;; *) usage_err "--numa wants 1 or 2, got '$NUMA'" ;; esac ;;
	--env) need "$@"; USER_ENV+=("$2"); shift 2 ;;
	--ready) need "$@"; READY=$2; shift 2
		case $READY in auto | manual | delay | none) ;; *) usage_err "bad --ready '$READY'" ;; esac ;;
	--ready-timeout) need "$@"; is_int "$1" "$2"; READY_TIMEOUT=$2; shift 2 ;;
	--src-delay) need "$@"; is_int "$1" "$2"; SRC_DELAY=$2; shift 2 ;;
	--cache) need "$@"; CACHE=$2; shift 2 ;;
	--sh) need "$@"; SH_STRING=$2; shift 2 ;;
	--dst) need "$@"; DST_CMD=$2; DST_SET=1; shift 2 ;;
	--src) need "$@"; SRC_CMD=$2; SRC_SET=1; shift 2 ;;
	-q | --quiet) QUIET=1; shift ;;
	--) shift; CMD=("$@"); break ;;
	*) usage_err "unknown argument '$1'" ;;
	esac
done

case $MODE in
single)
	[ -n "$SH_STRING" ] || [ "${#CMD[@]}" -gt 0 ] || usage_err "single needs -- CMD [ARGS...] or --sh STRING"
	[ -z "$SH_STRING" ] || [ "${#CMD[@]}" -eq 0 ] || usage_err "give either --sh or -- CMD, not both"
	[ -z "$DST_SET$SRC_SET" ] || usage_err "--dst/--src are for pair"
	TIMEOUT=${TIMEOUT:-120}
	;;
pair)
	if [ -z "$DST_SET" ] || [ -z "$SRC_SET" ]; then usage_err "pair needs --dst and --src"; fi
	if [ -n "$SH_STRING" ] || [ "${#CMD[@]}" -gt 0 ]; then usage_err "pair takes --dst/--src, not --sh or -- CMD"; fi
	TIMEOUT=${TIMEOUT:-180}
	;;
esac
[ -z "$TIMEOUT" ] || [ "$TIMEOUT" -ge 20 ] || usage_err "--timeout must be at least 20 s (boot takes ~5 s)"
[ "$MEM" -ge 256 ] || usage_err "--mem must be at least 256"
# two NUMA nodes need a vCPU each
DEF_PAIR_CPUS=1
[ "$NUMA" = 2 ] && DEF_PAIR_CPUS=2
[ "$NUMA" = 1 ] || [ "${CPUS:-2}" -ge 2 ] || usage_err "--numa 2 needs --cpus 2 or more"

check_prereqs
CACHE=$(mkdir -p "$CACHE" && cd "$CACHE" && pwd -P)
build_initramfs
prepare_kernel
case $MODE in
check)
	log "ok: qemu $(qemu-system-x86_64 --version | head -n1 | awk '{print $4}'), kernel $KVER"
	exit 0
	;;
initramfs)
	echo "$INITRD"
	exit 0
	;;
esac

trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
prepare_out
rc=0
if [ "$MODE" = single ]; then
	run_single || rc=$?
else
	run_pair || rc=$?
fi
exit "$rc"
