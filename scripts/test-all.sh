#!/usr/bin/env bash
# Install what is needed, build with warnings as errors, and run every test:
#   1. unit + integration suites (build-test/)
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   3. the same under ThreadSanitizer, with tests/tsan.supp (build-tsan/)
#   4. the rxe suite: real RDMA verbs on soft-RoCE inside QEMU guests (build-test/)
#   5. QEMU 10 with rmig (integrations/qemu/build.sh build-qemu), the qemu suite
#   6. every libFuzzer target for 15 s (bench/fuzz.sh, build-fuzz/)
#   7. the Debian packages: built from HEAD in a temporary copy, linted,
#      installed, used, purged (tests/pkg/pkg-test.sh; one result)
# Ends with one line "N passed, N failed, N skipped" over all of them. A skip
# counts as a failure unless tests/skip-allow.txt allows it, and every test a
# suite registers must report a result.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --with-rxe --with-qemu || { echo "0 passed, 1 failed"; exit 1; }

total_pass=0 total_fail=0 total_skip=0
failed_names=()

# Count one meson test run from its JSON log (the console summary is per run).
# A skip is a failure unless the test is on the allow list (tests/skip-allow.txt:
# "SUITE-DIR TEST-NAME  # why", documented there); that covers meson's exit 77
# and cmocka's skip() inside a binary that meson saw pass ("[  SKIPPED ]").
# With EXPECT_N, the run must also have reported exactly that many tests.
tally() {
	local dir=$1 expect=${2:-} counts
	counts=$(python3 - "$dir/meson-logs/testlog.json" "$dir" "tests/skip-allow.txt" "$expect" <<'PY'
import json, re, sys
log, dirname, allow_path, expect = sys.argv[1:5]
allow = set()
try:
    for line in open(allow_path):
        line = line.split("#", 1)[0].split()
        if len(line) == 2:
            allow.add((line[0], line[1]))
except FileNotFoundError:
    pass
p = f = s = 0
names = []
n = 0
try:
    for line in open(log):
        r = json.loads(line)
        n += 1
        name = r.get("name", "?")
        res = r.get("result")
        out = (r.get("stdout") or "") + (r.get("stderr") or "")
        if res == "OK" and re.search(r"^\[  SKIPPED \]", out, re.M):
            res = "SKIP"
        short = name.split(" / ")[-1].strip()
        if res in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif res == "SKIP" and (dirname, short) in allow:
            s += 1
        elif res == "SKIP":
            f += 1
            names.append(name + " (skipped, not on tests/skip-allow.txt)")
        else:
            f += 1
            names.append(name)
except FileNotFoundError:
    f += 1
    names.append("(no test log)")
if expect and n != int(expect):
    f += 1
    names.append(f"(ran {n} of the {expect} registered tests)")
print(p, f, s, " ".join(x.replace(" ", "_") for x in names))
PY
)
	read -r p f s names <<<"$counts"
	total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
	[ -n "${names:-}" ] && failed_names+=("$dir: $names")
}

setup() {
	local dir=$1; shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
	else
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
	fi || { cat "$dir.setup.log"; return 1; }
}

run_suites() {
	local dir=$1; shift
	local timeout=${RMIG_TEST_TIMEOUT_MULT:-1} expect
	# how many tests these suites register: each must report a result
	expect=$(meson test -C "$dir" --list "$@" 2>/dev/null | grep -c ' / ')
	echo "== meson test -C $dir $* ($expect tests)"
	meson test -C "$dir" --print-errorlogs --timeout-multiplier "$timeout" "$@"
	tally "$dir" "$expect"
}

echo "== build (warnings as errors)"
if setup build-test --werror -Dbuildtype=debugoptimized && ninja -C build-test; then
	run_suites build-test --suite unit --suite integration
else
	total_fail=$((total_fail + 1)); failed_names+=("build-test: build")
fi

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer"
if setup build-asan --werror -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Drxe=false &&
	ninja -C build-asan; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		RMIG_TEST_TIMEOUT_MULT=3 run_suites build-asan --suite unit --suite integration
else
	total_fail=$((total_fail + 1)); failed_names+=("build-asan: build")
fi

echo "== build with ThreadSanitizer"
# tests/tsan.supp names only the guest-RAM accesses that race by design (a
# vCPU writes a page while a channel reads it; the dirty bitmap resends it):
# docs/reliability.md explains each entry. Anything else fails the run.
if setup build-tsan --werror -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false -Drxe=false &&
	ninja -C build-tsan; then
	TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
		RMIG_TEST_TIMEOUT_MULT=4 run_suites build-tsan --suite unit --suite integration
else
	total_fail=$((total_fail + 1)); failed_names+=("build-tsan: build")
fi

# The rxe suite is part of the test command, not an extra: if it is not
# registered (built with -Drxe=false), that is a failure, not a skip.
if [ -d build-test ]; then
	echo "== soft-RoCE suite (QEMU guests)"
	# the list first, then grep: under pipefail, grep -q closing the pipe
	# early would fail the pipeline with meson's SIGPIPE
	listed=$(meson test -C build-test --list 2>/dev/null)
	if grep -q ':rxe / ' <<<"$listed"; then
		run_suites build-test --suite rxe --num-processes 1
	else
		total_fail=$((total_fail + 1)); failed_names+=("build-test: rxe suite not registered")
	fi
fi

# QEMU with rmig (issue 11): build QEMU 10 with integrations/qemu's patches
# against this tree's librmig, then the qemu suite (tests/qemu/) with that
# binary. A failed build is a failure, not a skip; the suite runs only here
# (not under --suite unit/integration/rxe).
if [ -d build-test ]; then
	echo "== QEMU: integrations/qemu/build.sh build-qemu, then the qemu suite"
	# pipefail: the substitution fails if build.sh does
	listed=$(meson test -C build-test --list 2>/dev/null)
	if ! grep -q ':qemu / ' <<<"$listed"; then
		total_fail=$((total_fail + 1)); failed_names+=("build-test: qemu suite not registered")
	elif qemu_bin=$(bash integrations/qemu/build.sh build-qemu | tail -n 1) &&
		[ -n "$qemu_bin" ] && [ -x "$qemu_bin" ]; then
		RMIG_QEMU=$qemu_bin run_suites build-test --suite qemu --num-processes 1
	else
		total_fail=$((total_fail + 1)); failed_names+=("build-qemu: integrations/qemu/build.sh failed")
	fi
fi

# Fuzzing, time-boxed: every libFuzzer target (fuzz/) for 15 s on seeds made
# from real messages; a target that finds nothing passes, any crash, leak,
# timeout or sanitizer report fails (bench/fuzz.sh; docs/reliability.md has
# the long runs).
echo "== fuzz: bench/fuzz.sh ${RMIG_FUZZ_SECONDS:-15}"
bash bench/fuzz.sh "${RMIG_FUZZ_SECONDS:-15}" | tee fuzz.log
fuzz_rc=${PIPESTATUS[0]}
fz_ok=$(awk 'NF == 3 && $3 == "ok"' fuzz.log | wc -l)
fz_bad=$(awk '$3 == "FINDING"' fuzz.log | wc -l)
total_pass=$((total_pass + fz_ok)); total_fail=$((total_fail + fz_bad))
[ "$fz_bad" -gt 0 ] && failed_names+=("fuzz: $(awk '$3 == "FINDING" { printf "%s ", $1 }' fuzz.log)")
if [ "$fuzz_rc" -ne 0 ] && [ "$fz_bad" -eq 0 ] || [ "$fz_ok" -eq 0 ]; then
	total_fail=$((total_fail + 1)); failed_names+=("fuzz: bench/fuzz.sh exit $fuzz_rc")
fi

# The packages of debian/, as a user gets them: dpkg-buildpackage in a copy
# of HEAD (the tree's build directories untouched), lintian without errors,
# dpkg -i, a program built with pkg-config against them and run, rmig-bench
# and its manual pages, then dpkg --purge. One passed or failed.
echo "== Debian packages: tests/pkg/pkg-test.sh"
if bash tests/pkg/pkg-test.sh; then
	total_pass=$((total_pass + 1))
else
	total_fail=$((total_fail + 1)); failed_names+=("pkg: tests/pkg/pkg-test.sh")
fi

echo
for n in "${failed_names[@]}"; do echo "failed: $n"; done
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
