#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pkg-test.sh [--with PATH]... [--keep]: build the Debian packages of debian/ in a
# temporary copy of the tree (dpkg-buildpackage -us -uc -b; the tree's own
# build directories are never touched), lint them (lintian: any error fails,
# warnings are printed), install them (dpkg -i), then as a user would:
# compile tests/pkg/pkg-smoke.c with `pkg-config --cflags --libs rmig`
# against the installed headers and library and run it (an 8 MiB loopback
# tcp migration, verified), run `rmig-bench --help` and a short rmig-bench,
# and find the manual pages with `man -w`. Finally purge the three packages,
# so the machine is left as it was, and check that they are gone.
#
# The copy is `git archive HEAD` (what is committed); --with PATH (a file or
# folder, repeatable) lays the working tree's PATH over it, to try changes
# before committing them (e.g. --with debian).
# --keep leaves the temporary directory (the .debs, the logs) in place.
# Needs root (dpkg -i) and dpkg-dev, debhelper, fakeroot, lintian, man-db
# (scripts/install-deps.sh). Prints "pkg-test: PASS" and exits 0, or names
# what failed and exits 1.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkgs=(rmig-tools librmig-dev librmig0)
with=() keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--with) [ $# -ge 2 ] || { echo "usage: $0 [--with PATH]... [--keep]" >&2; exit 2; }
		with+=("$2"); shift ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--with PATH]... [--keep]" >&2; exit 2 ;;
	esac
	shift
done

die() {
	echo "pkg-test: FAIL: $*"
	exit 1
}

for tool in dpkg-buildpackage dh fakeroot lintian man pkg-config cc; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (scripts/install-deps.sh installs it)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (dpkg -i and dpkg --purge)"
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
		die "$p is already installed; this test installs and purges it, so it will not touch one it did not install"
	fi
done

tmp=$(mktemp -d /tmp/rmig-pkg.XXXXXX)
installed=0
cleanup() {
	if [ $installed -eq 1 ]; then
		dpkg --purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1 || cat "$tmp/purge.log"
	fi
	if [ $keep -eq 1 ]; then echo "pkg-test: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# 1. A copy of the source, then the packages, built in the copy.
src=$tmp/rmig-0.1.0
mkdir -p "$src"
git -C "$root" archive --format=tar HEAD | tar -xf - -C "$src" || die "git archive HEAD"
for p in ${with[@]+"${with[@]}"}; do
	(cd "$root" && tar -cf - "$p") | tar -xf - -C "$src" || die "copying $p"
done
[ -d "$src/debian" ] || die "no debian/ in the copy (commit it, or pass --with debian)"
echo "== dpkg-buildpackage -us -uc -b (in $src)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	tail -30 "$tmp/build.log"
	die "dpkg-buildpackage failed (last lines above)"
fi
debs=()
for p in "${pkgs[@]}"; do
	f=$(ls "$tmp"/"${p}"_*.deb 2>/dev/null | head -1)
	[ -n "$f" ] || die "dpkg-buildpackage made no $p package"
	debs+=("$f")
	echo "built $(basename "$f"): $(dpkg-deb -c "$f" | grep -c -v '/$') files"
done

# 2. lintian: errors fail, warnings are shown.
echo "== lintian"
changes=$(ls "$tmp"/rmig_*.changes | head -1)
lintian --fail-on error --display-level '>=warning' "$changes" >"$tmp/lintian.log" 2>&1
lrc=$?
cat "$tmp/lintian.log"
[ $lrc -eq 0 ] || die "lintian reports errors"
echo "lintian: $(grep -c '^E:' "$tmp/lintian.log") errors, $(grep -c '^W:' "$tmp/lintian.log") warnings"

# 3. Install, as a user would.
echo "== dpkg -i"
installed=1
if ! dpkg -i "${debs[@]}" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	echo "pkg-test: dpkg -i left dependencies missing; apt-get -f install"
	DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq >/dev/null 2>&1 ||
		die "the packages do not install"
fi
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" | grep -q "install ok installed" || die "$p is not installed"
done

# 4. A program against the installed library, found by pkg-config.
echo "== cc pkg-smoke.c \$(pkg-config --cflags --libs rmig)"
flags=$(pkg-config --cflags --libs rmig) || die "pkg-config does not find rmig"
echo "pkg-config: $flags"
# shellcheck disable=SC2086
cc -Wall -Wextra -Werror -o "$tmp/pkg-smoke" "$root/tests/pkg/pkg-smoke.c" $flags -lpthread ||
	die "pkg-smoke.c does not build against the installed headers and library"
lib=$(ldd "$tmp/pkg-smoke" | awk '$1 ~ /^librmig\.so/ { print $3 }')
[ -n "$lib" ] && dpkg -S "$(readlink -f "$lib")" 2>/dev/null | grep -q '^librmig0:' ||
	die "pkg-smoke resolves librmig to '$lib', not librmig0's file"
echo "pkg-smoke links $lib (librmig0)"
"$tmp/pkg-smoke" || die "pkg-smoke: the migration against the installed library failed"

# 5. The tool and the manual pages.
echo "== rmig-bench, man -w"
[ "$(command -v rmig-bench)" = /usr/bin/rmig-bench ] || die "rmig-bench is not /usr/bin/rmig-bench"
# captured, not piped into grep -q: an early exit of grep would SIGPIPE the writer
out=$(rmig-bench --help) || die "rmig-bench --help exited $?"
grep -q '^Usage: rmig-bench' <<<"$out" || die "rmig-bench --help prints no usage"
out=$(rmig-bench --size 16M --channels 2 --quiet) || die "rmig-bench --size 16M exited $?: $out"
grep -q 'verified yes' <<<"$out" || die "rmig-bench --size 16M did not verify: $out"
for page in "1 rmig-bench" "3 rmig_src_create" "3 rmig_live_run" "7 rmig"; do
	# shellcheck disable=SC2086
	path=$(man -w $page 2>/dev/null) || die "man -w $page finds nothing"
	dpkg -S "$path" >/dev/null 2>&1 || die "man -w $page gives $path, which no package owns"
	echo "man -w $page: $path"
done

# 6. Purge, and check that nothing is left.
echo "== dpkg --purge ${pkgs[*]}"
dpkg --purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; die "dpkg --purge"; }
installed=0
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
		die "$p is still installed after the purge"
	fi
done
[ ! -e /usr/include/rmig ] && [ ! -e /usr/bin/rmig-bench ] ||
	die "files left behind after the purge"
pkg-config --exists rmig 2>/dev/null && die "pkg-config still finds rmig after the purge"
echo "pkg-test: PASS"
