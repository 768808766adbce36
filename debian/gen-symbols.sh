#!/bin/sh
# Print debian/librmig0.symbols from librmig.map: every global symbol of a
# version node RMIG_X.Y, with X.Y.0 as the first upstream version that had it.
#   debian/gen-symbols.sh > debian/librmig0.symbols     # after editing librmig.map
#   debian/gen-symbols.sh --check                       # exit 1 if out of date
set -eu
here=$(cd "$(dirname "$0")" && pwd)
map=$here/../librmig.map

generate() {
	echo "librmig.so.0 librmig0 #MINVER#"
	echo "* Build-Depends-Package: librmig-dev"
	awk '
	/^[ \t]*[A-Za-z_][A-Za-z0-9_.]*[ \t]*\{/ {
		node = $1; sub(/\{.*/, "", node)
		ver = node; sub(/^[A-Za-z_]*_/, "", ver)
		if (ver !~ /^[0-9]+\.[0-9]+$/) {
			print "gen-symbols: version node " node " is not NAME_X.Y" > "/dev/stderr"
			exit 1
		}
		ver = ver ".0"
		print " " node "@" node " " ver
		scope = ""
		next
	}
	/global:/ { scope = "global"; next }
	/local:/ { scope = "local"; next }
	/^[ \t]*\}/ { scope = ""; next }
	scope == "global" {
		line = $0; sub(/#.*/, "", line); gsub(/[ \t;]/, "", line)
		if (line != "")
			print " " line "@" node " " ver
	}' "$map" | LC_ALL=C sort
}

case ${1:-} in
--check)
	if ! generate | diff -u "$here/librmig0.symbols" - ; then
		echo "debian/librmig0.symbols does not match librmig.map;" \
			"run: debian/gen-symbols.sh > debian/librmig0.symbols" >&2
		exit 1
	fi
	echo "debian/librmig0.symbols matches librmig.map ($(generate | grep -c '@') symbols)"
	;;
"") generate ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
