#!/bin/sh
# SPDX-License-Identifier: MIT
#
# rmig's file transport against dd on the same filesystem, in the same run:
#
#   save     rmig-bench --transport file (2 channels; rmig_src_finish fdatasyncs)
#            vs  dd if=/dev/zero of=F bs=1M count=N conv=fdatasync
#   restore  rmig restore (2 threads) vs dd if=F of=/dev/null bs=1M, three ways:
#            warm  (the file is still in the page cache after the save),
#            cold  (evicted first: posix_fadvise DONTNEED, which is what
#                   `dd iflag=nocache count=0` does; the file is clean after
#                   fdatasync, so it goes; works without root, unlike
#                   /proc/sys/vm/drop_caches),
#            direct (rmig --direct-io vs dd oflag=direct / iflag=direct).
#
# Every repetition runs each case once for rmig and once for dd, back to
# back, and the order within each pair alternates from one repetition to the
# next (rmig dd, dd rmig, rmig dd, ...: ABBA), so neither side always runs
# first, right after the other side's writeback or right after an O_DIRECT
# run; before every timed run its file is removed and `sync; sleep 1` lets
# earlier writeback and deletes finish. Medians and ratios (rmig / dd in
# throughput, higher is better for rmig) are printed at the end, with rmig's
# CPU seconds per GB (user + system of the save and of the restore, from
# rmig-bench) and dd's (from /usr/bin/time, when it is installed). A
# reference dd that copies real data from tmpfs (/dev/shm) shows the cost of
# reading RAM that dd from /dev/zero does not pay.
#
# Usage: bench/file-vs-dd.sh [-B BUILD_DIR] [-d DIR] [-s MIB] [-n REPS] [-c CHANNELS] [-R]
#   -B  build directory with bench/rmig-bench    [build]
#   -d  directory for the files (not tmpfs)       [BUILD_DIR]
#   -s  size in MiB                               [2048]
#   -n  repetitions (pairs per case; even is fair) [4]
#   -c  rmig channels (and restore threads)       [2]
#   -R  skip the real-data dd reference
set -eu

build=build
dir=
mib=2048
reps=4
channels=2
realref=1
while getopts B:d:s:n:c:Rh opt; do
	case $opt in
	B) build=$OPTARG ;;
	d) dir=$OPTARG ;;
	s) mib=$OPTARG ;;
	n) reps=$OPTARG ;;
	c) channels=$OPTARG ;;
	R) realref=0 ;;
	*) sed -n '3,37p' "$0"; exit 2 ;;
	esac
done
[ -n "$dir" ] || dir=$build
bench=$build/bench/rmig-bench
[ -x "$bench" ] || { echo "file-vs-dd: no $bench (build first)" >&2; exit 2; }
rf=$dir/file-vs-dd.rmig
df=$dir/file-vs-dd.dd
shm=/dev/shm/file-vs-dd.$$
out=$(mktemp)
trap 'rm -f "$rf" "$df" "$shm" "$out" "$out".*' EXIT INT TERM

# seconds of one dd run, from its line "... copied, 1.234 s, ..."; with
# /usr/bin/time its CPU seconds (user + system) go under the key in $cpukey
timer=
[ -x /usr/bin/time ] && timer="/usr/bin/time -f cpu=%U+%S"
cpukey=
dd_s() {
	$timer dd "$@" 2>"$out.dd" || { cat "$out.dd" >&2; exit 1; }
	if [ -n "$timer" ] && [ -n "$cpukey" ]; then
		rec "$cpukey" "$(sed -n 's/^cpu=\([0-9.]*\)+\([0-9.]*\)$/\1 \2/p' "$out.dd" | awk '{ print $1 + $2 }')"
	fi
	sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' "$out.dd"
}

# one rmig-bench run: record its save seconds under $1, restore seconds under $2
rmig_run() {
	ks=$1 kr=$2
	shift 2
	rm -f "$rf"
	settle
	if ! "$bench" --transport file --file "$rf" --size "${mib}M" --channels "$channels" \
		--json "$@" >"$out.json" 2>"$out.err"; then
		cat "$out.err" >&2
		exit 1
	fi
	grep -q '"role":"restore".*"verified":true' "$out.json" ||
		{ echo "file-vs-dd: the restore did not verify" >&2; exit 1; }
	rec "$ks" "$(sed -n 's/.*"role":"save".*"seconds":\([0-9.]*\).*/\1/p' "$out.json")"
	rec "$kr" "$(sed -n 's/.*"role":"restore".*"seconds":\([0-9.]*\).*/\1/p' "$out.json")"
	rec "${ks}_cpu" "$(sed -n 's/.*"role":"save".*"cpu_s":\([0-9.]*\).*/\1/p' "$out.json")"
	rec "${kr}_cpu" "$(sed -n 's/.*"role":"restore".*"cpu_s":\([0-9.]*\).*/\1/p' "$out.json")"
}

rec() { echo "$2" >>"$out.$1"; }

# Before each timed case: flush what earlier cases left dirty (and the
# deletes of their files), so no case pays for another's writeback.
settle() { sync; sleep 1; }

median() {
	sort -g "$out.$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "file-vs-dd: ${mib} MiB, $reps repetitions, rmig channels $channels, in $dir"
echo "  filesystem: $(df -PT "$dir" | awk 'NR == 2 { print $1 " " $2 }')  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$realref" = 1 ]; then
	head -c "$((mib * 1048576))" /dev/urandom >"$shm"
fi

# The dd side of each case; $1 = warm, cold or direct.
dd_case() {
	rm -f "$df"; settle
	case $1 in
	warm)
		cpukey=dd_save_cpu
		rec dd_save "$(dd_s if=/dev/zero of="$df" bs=1M count="$mib" conv=fdatasync)"
		cpukey=dd_warm_cpu
		rec dd_warm "$(dd_s if="$df" of=/dev/null bs=1M)" ;;
	cold)
		cpukey=dd_save_cpu
		rec dd_save "$(dd_s if=/dev/zero of="$df" bs=1M count="$mib" conv=fdatasync)"
		dd if="$df" iflag=nocache count=0 2>/dev/null
		cpukey=dd_cold_cpu
		rec dd_cold "$(dd_s if="$df" of=/dev/null bs=1M)" ;;
	direct)
		cpukey=dd_dsave_cpu
		rec dd_dsave "$(dd_s if=/dev/zero of="$df" bs=1M count="$mib" oflag=direct conv=fdatasync)"
		cpukey=dd_direct_cpu
		rec dd_direct "$(dd_s if="$df" of=/dev/null bs=1M iflag=direct)" ;;
	esac
	cpukey=
	rm -f "$df"
}

rmig_case() {
	case $1 in
	warm) rmig_run rmig_save rmig_warm ;;
	cold) rmig_run rmig_save rmig_cold --drop-cache ;;
	direct) rmig_run rmig_dsave rmig_direct --direct-io --drop-cache ;;
	esac
	rm -f "$rf"
}

i=1
while [ "$i" -le "$reps" ]; do
	for c in warm cold direct; do
		if [ $((i % 2)) = 1 ]; then
			rmig_case $c; dd_case $c
		else
			dd_case $c; rmig_case $c
		fi
	done
	if [ "$realref" = 1 ]; then
		rm -f "$df"; settle
		rec dd_real "$(dd_s if="$shm" of="$df" bs=1M conv=fdatasync)"
		rm -f "$df"
	fi
	printf '  rep %s (%s first) seconds: rmig save %s %s direct %s | dd save %s %s direct %s | restore rmig warm %s cold %s direct %s | dd warm %s cold %s direct %s | load %s\n' \
		"$i" "$([ $((i % 2)) = 1 ] && echo rmig || echo dd)" \
		"$(sed -n "$((2 * i - 1))p" "$out.rmig_save")" "$(sed -n "$((2 * i))p" "$out.rmig_save")" \
		"$(sed -n "${i}p" "$out.rmig_dsave")" "$(sed -n "$((2 * i - 1))p" "$out.dd_save")" \
		"$(sed -n "$((2 * i))p" "$out.dd_save")" "$(sed -n "${i}p" "$out.dd_dsave")" \
		"$(sed -n "${i}p" "$out.rmig_warm")" "$(sed -n "${i}p" "$out.rmig_cold")" \
		"$(sed -n "${i}p" "$out.rmig_direct")" "$(sed -n "${i}p" "$out.dd_warm")" \
		"$(sed -n "${i}p" "$out.dd_cold")" "$(sed -n "${i}p" "$out.dd_direct")" \
		"$(cut -d' ' -f1 /proc/loadavg)"
	i=$((i + 1))
done

mibs() { awk -v m="$mib" -v s="$1" 'BEGIN { printf "%8.0f", m / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%5.2fx", b / a }'; }

# CPU seconds per GB (10^9 bytes) of the median sample under key $1, or "-"
cpugb() {
	if [ -s "$out.$1" ]; then
		awk -v m="$mib" -v c="$(median "$1")" 'BEGIN { printf "%5.2f", c / (m * 1048576 / 1e9) }'
	else
		printf '%5s' -
	fi
}

line() { # label rmig-key dd-key
	r=$(median "$2"); d=$(median "$3")
	printf '  %-34s rmig %s MiB/s  dd %s MiB/s  rmig/dd %s  CPU s/GB rmig %s dd %s\n' "$1" \
		"$(mibs "$r")" "$(mibs "$d")" "$(ratio "$r" "$d")" "$(cpugb "$2_cpu")" "$(cpugb "$3_cpu")"
}

echo
echo "medians of $reps pairs (save: $((2 * reps)) pairs), MiB/s = $mib MiB / seconds:"
line "save, page cache + fdatasync" rmig_save dd_save
line "save, O_DIRECT (+ fdatasync)" rmig_dsave dd_dsave
line "restore, warm page cache" rmig_warm dd_warm
line "restore, cold (evicted)" rmig_cold dd_cold
line "restore, O_DIRECT" rmig_direct dd_direct
if [ "$realref" = 1 ]; then
	printf '  %-34s                    dd %s MiB/s  (dd if=/dev/shm random of=F conv=fdatasync)\n' \
		"reference: dd of real data" "$(mibs "$(median dd_real)")"
fi
echo "  load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
