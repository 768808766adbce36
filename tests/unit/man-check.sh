#!/bin/sh
# SPDX-License-Identifier: MIT
# man-check.sh SRCROOT [RMIG_BENCH]: the manual pages under SRCROOT/man render without a
# single groff warning, and every symbol exported by SRCROOT/librmig.map has a
# section 3 page or alias (man/man3/<symbol>.3), and man/meson.build installs
# every page. Given the built rmig-bench, also that rmig-bench.1 names each
# option its --help lists.
# Needs groff (Debian: groff-base).
set -u
root=${1:?usage: man-check.sh SRCROOT [RMIG_BENCH]}
bench=${2:-}
man="$root/man"
map="$root/librmig.map"
fail=0

if ! command -v groff >/dev/null 2>&1; then
	echo "man-check: groff not found (Debian package groff-base)" >&2
	exit 1
fi

pages=$(cd "$man" && ls man1/*.1 man3/*.3 man7/*.7 2>/dev/null)
if [ -z "$pages" ]; then
	echo "man-check: no pages under $man" >&2
	exit 1
fi

# (a) render each page; alias pages (.so man3/x.3) resolve from $man.
n=0
for p in $pages; do
	n=$((n + 1))
	out=$(cd "$man" && groff -man -ww -z -I "$man" "$p" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "man-check: $p: groff exit $rc" >&2
		[ -n "$out" ] && printf '%s\n' "$out" >&2
		fail=1
	fi
	# an alias page must point at a page that exists
	so=$(sed -n 's/^\.so[ \t]*//p' "$man/$p")
	if [ -n "$so" ] && [ ! -f "$man/$so" ]; then
		echo "man-check: $p: .so target $so does not exist" >&2
		fail=1
	fi
done

# (b) every exported symbol has a page: names between "global:" and "local:".
syms=$(sed -n '/global:/,/local:/p' "$map" | sed -e 's/\(global\|local\)://' \
	-e 's/[;[:space:]]//g' -e '/^$/d' -e '/^\*$/d')
if [ -z "$syms" ]; then
	echo "man-check: no global symbols parsed from $map" >&2
	exit 1
fi
s=0
for sym in $syms; do
	s=$((s + 1))
	if [ ! -f "$man/man3/$sym.3" ]; then
		echo "man-check: exported symbol $sym has no page man/man3/$sym.3" >&2
		fail=1
	fi
done

# (c) every page is installed: named in man/meson.build.
for p in $pages; do
	if ! grep -q "'$p'" "$man/meson.build"; then
		echo "man-check: $p is not installed by man/meson.build" >&2
		fail=1
	fi
done

# (d) every option of rmig-bench --help is in rmig-bench.1 (as \-\-name;
# short ones as \-x ", ").
o=0
if [ -n "$bench" ]; then
	help=$("$bench" --help) || { echo "man-check: $bench --help failed" >&2; exit 1; }
	for opt in $(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		o=$((o + 1))
		esc=$(printf '%s' "$opt" | sed 's/-/\\-/g')
		if ! grep -qF -- "$esc" "$man/man1/rmig-bench.1"; then
			echo "man-check: rmig-bench option $opt is not in man1/rmig-bench.1" >&2
			fail=1
		fi
	done
	for opt in $(printf '%s\n' "$help" | sed -n 's/^  \(-[a-zA-Z]\), --.*/\1/p'); do
		o=$((o + 1))
		esc="\\-${opt#-} \", \""
		if ! grep -qF -- "$esc" "$man/man1/rmig-bench.1"; then
			echo "man-check: rmig-bench option $opt is not in man1/rmig-bench.1" >&2
			fail=1
		fi
	done
fi

if [ $fail -eq 0 ]; then
	echo "man-check: $n pages render cleanly; all $s exported symbols documented${bench:+; all $o rmig-bench options in rmig-bench.1}"
fi
exit $fail
