# SPDX-License-Identifier: MIT
# Shared by the comparison scripts in bench/ (sourced, not run).

# bench_find_rmig_bench DIR: print the rmig-bench to use: $RMIG_BENCH if set,
# else the tree's build/, else one next to the scripts, else one on PATH.
# Prints nothing (and returns 1) when none is executable.
bench_find_rmig_bench() {
	local here=$1 c
	for c in "${RMIG_BENCH:-}" "$here/../build/bench/rmig-bench" "$here/rmig-bench" \
		"$(command -v rmig-bench || true)"; do
		if [[ -n $c && -x $c ]]; then
			printf '%s\n' "$c"
			return 0
		fi
	done
	return 1
}

# bench_usage SCRIPT FIRST LAST [STATUS]: print the script's header comment
# (lines FIRST..LAST, without the '# ') as its --help, and exit with STATUS.
bench_usage() {
	sed -n "$2,$3p" "$1" | sed 's/^# \{0,1\}//'
	exit "${4:-0}"
}
