#!/usr/bin/env bash
# Build qemu-system-x86_64 from Debian 13's QEMU 10.0 source package, with
# Debian's patches and then ours (patches/series), against the librmig of
# this tree. Usage: integrations/qemu/build.sh [OUTDIR]   (default: build-qemu/
# at the top of the repository). The binary's absolute path is the last line
# of stdout; progress goes to stderr. See README.md here.
#
# OUTDIR layout:
#   apt/        private apt configuration (sources, lists, cache): the
#               system's own lists are not touched
#   dl/         downloaded source package and build-tool .debs (kept)
#   tools/      meson and pycotap unpacked from trixie's .debs; venv/
#   rmig-build/ rmig-prefix/   librmig from this tree, installed
#   qemu-VER/   the patched QEMU tree; qemu-VER/build/ its build
#   stamp       what qemu-VER/ was made from (source + patches + script)
#
# Environment: RMIG_QEMU_VERSION (upstream version, default 10.0.13),
# RMIG_QEMU_SUITE (default trixie), RMIG_QEMU_MIRROR (a Debian mirror URI;
# default: the one this machine's apt uses), RMIG_QEMU_JOBS (ninja -j).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=${RMIG_QEMU_VERSION:-10.0.13}
suite=${RMIG_QEMU_SUITE:-trixie}
jobs=${RMIG_QEMU_JOBS:-$(nproc)}

log() { echo "qemu-build: $*" >&2; }
die() { echo "qemu-build: error: $*" >&2; exit 1; }

case ${1:-} in
-h | --help)
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -le 1 ] || die "usage: $0 [OUTDIR]"
out=${1:-$repo/build-qemu}
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
case $out in
*[[:space:]]*) die "OUTDIR may not contain white space: $out" ;;
esac

src=$out/qemu-$version
bld=$src/build
venv=$out/tools/venv
rmig_bld=$out/rmig-build
rmig_pfx=$out/rmig-prefix
t_start=$(date +%s)

for tool in apt-get dpkg dpkg-deb patch tar xz pkg-config ninja cc /usr/bin/python3; do
	command -v "$tool" >/dev/null ||
		die "$tool not found: run scripts/install-deps.sh --with-qemu"
done

# --- the stamp: source version, our patches, this script ------------------
patch_dir=$here/patches
[ -f "$patch_dir/series" ] || die "$patch_dir/series is missing"
# Patch names from a quilt-style series: comments and blank lines skipped.
read_series() {
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$1" |
		awk '{ print $1 }'
}
our_patches=$(read_series "$patch_dir/series")
stamp_want=$({
	echo "qemu $version $suite"
	cd "$here" && find patches -type f -print0 | sort -z | xargs -0 sha256sum
	sha256sum <"$here/build.sh"
} | sha256sum | cut -d' ' -f1)

# --- librmig from this tree, installed into OUTDIR/rmig-prefix -------------
build_librmig() {
	log "librmig: meson setup + install in $rmig_bld"
	if [ ! -f "$rmig_bld/build.ninja" ]; then
		meson setup "$rmig_bld" "$repo" --prefix="$rmig_pfx" --libdir=lib \
			--buildtype=release -Drdma=enabled -Drxe=false -Dtests=false \
			>"$out/rmig-setup.log" 2>&1 ||
			{ tail -n 30 "$out/rmig-setup.log" >&2; die "librmig: meson setup failed (log: $out/rmig-setup.log)"; }
	fi
	ninja -C "$rmig_bld" -j "$jobs" install >"$out/rmig-build.log" 2>&1 ||
		{ tail -n 30 "$out/rmig-build.log" >&2; die "librmig: build or install failed (log: $out/rmig-build.log)"; }
	[ -f "$rmig_pfx/lib/pkgconfig/rmig.pc" ] || die "librmig: $rmig_pfx/lib/pkgconfig/rmig.pc not installed"
}

# --- private apt configuration: trixie main from this machine's mirror ----
# The first deb URI of the system's own lists, for a suite that is not a
# security or updates one (deb822 first, then the one-line format).
system_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			uris = ""; suites = ""; types = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
				if ($i ~ /^Suites:/) { suites = $i }
				if ($i ~ /^Types:/) { types = $i }
			}
			if (types ~ /deb/ && uris != "" && suites !~ /security/) {
				split(uris, u, /[ \t]+/); print u[1]; exit
			}
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) !~ /security/) { print $i; exit }
		}' "$f"
	done
}

apt_opts=()
setup_apt() {
	local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	mirror=${RMIG_QEMU_MIRROR:-$(system_mirror)}
	mirror=${mirror%%$'\n'*}
	[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt (set RMIG_QEMU_MIRROR)"
	[ -f "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"
	mkdir -p "$out/apt/lists/partial" "$out/apt/cache/archives/partial"
	cat >"$out/apt/sources.list" <<-EOF
		deb [signed-by=$keyring] $mirror $suite main
		deb-src [signed-by=$keyring] $mirror $suite main
	EOF
	apt_opts=(-o "Dir::Etc::SourceList=$out/apt/sources.list"
		-o Dir::Etc::SourceParts=/nonexistent
		-o "Dir::State::Lists=$out/apt/lists"
		-o "Dir::Cache=$out/apt/cache"
		-o APT::Sandbox::User=root)
	log "apt: $suite main from $mirror (private lists in $out/apt)"
	apt-get "${apt_opts[@]}" -qq update >"$out/apt/update.log" 2>&1 ||
		{ cat "$out/apt/update.log" >&2; die "download: apt-get update of $suite failed"; }
}

# The Debian version of source package $1 in the private lists whose
# upstream part is $2 (epoch and +ds/-revision allowed around it).
src_version() {
	apt-cache "${apt_opts[@]}" showsrc "$1" 2>/dev/null |
		awk -v up="$2" '$1 == "Version:" {
			v = $2; u = v; sub(/^[0-9]+:/, "", u); sub(/[-+~].*$/, "", u)
			if (u == up && !found) { print v; found = 1 }
		}'
}

# Files listed in a .dsc's Checksums-Sha256, checked in dl/.
dsc_files_ok() {
	local dsc=$1 line sum size name
	[ -f "$dsc" ] || return 1
	while read -r sum size name; do
		[ -f "$out/dl/$name" ] || return 1
		echo "$sum  $out/dl/$name" | sha256sum --quiet -c - 2>/dev/null || return 1
	done < <(awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 } on && NF == 3' "$dsc")
}

fetch_sources() {
	mkdir -p "$out/dl"
	local dsc
	dsc=$(ls "$out"/dl/qemu_"$version"*.dsc 2>/dev/null | head -n 1 || true)
	if [ -n "$dsc" ] && dsc_files_ok "$dsc" &&
		ls "$out"/dl/meson_*.deb "$out"/dl/python3-pycotap_*.deb >/dev/null 2>&1; then
		log "download: using $out/dl (already complete)"
		return 0
	fi
	setup_apt
	local qv
	qv=$(src_version qemu "$version")
	[ -n "$qv" ] || die "download: no source package qemu $version in $suite main (apt-cache showsrc qemu)"
	log "download: qemu $qv source, meson and python3-pycotap from $suite"
	(cd "$out/dl" && apt-get "${apt_opts[@]}" -qq source --download-only "qemu=$qv") \
		>"$out/dl/source.log" 2>&1 ||
		{ tail -n 20 "$out/dl/source.log" >&2; die "download: apt-get source qemu=$qv failed"; }
	(cd "$out/dl" && apt-get "${apt_opts[@]}" -qq download meson python3-pycotap) \
		>"$out/dl/debs.log" 2>&1 ||
		{ tail -n 20 "$out/dl/debs.log" >&2; die "download: apt-get download meson python3-pycotap failed"; }
}

# --- meson >= 1.5 in a venv made from the system's python ----------------
make_tools() {
	local deb sp pkg
	rm -rf "$out/tools"
	mkdir -p "$out/tools/root"
	for deb in "$out"/dl/meson_*.deb "$out"/dl/python3-pycotap_*.deb; do
		dpkg -x "$deb" "$out/tools/root" || die "tools: dpkg -x $deb failed"
	done
	/usr/bin/python3 -m venv "$venv" || die "tools: python3 -m venv failed (python3-venv)"
	sp=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	# Links, not a .pth file: QEMU's configure makes its own venv on top of
	# this one, and sees this venv's packages but not its .pth paths.
	for pkg in "$out"/tools/root/usr/lib/python3/dist-packages/*; do
		ln -s "$pkg" "$sp/"
	done
	"$venv/bin/python3" -c '
import sys, mesonbuild.coredata as c
v = tuple(int(x) for x in c.version.split(".")[:2])
sys.exit(0 if v >= (1, 5) else "meson " + c.version + " < 1.5")' ||
		die "tools: meson from $suite not usable in $venv"
}

# --- the source tree: Debian's patches, then ours ------------------------
apply_series() {
	local dir=$1 series=$2 what=$3 p n=0
	while read -r p; do
		[ -n "$p" ] || continue
		[ -f "$dir/$p" ] || die "patch: $what patch $p listed in $series is missing"
		patch -d "$src" -p1 --forward --batch --quiet <"$dir/$p" >"$out/patch.log" 2>&1 ||
			{ cat "$out/patch.log" >&2; die "patch: $what patch $p does not apply"; }
		n=$((n + 1))
	done < <(read_series "$series")
	log "patch: $n $what patches applied"
}

make_tree() {
	local orig deb
	orig=$(ls "$out"/dl/qemu_"$version"*.orig.tar.* | head -n 1)
	deb=$(ls "$out"/dl/qemu_"$version"*.debian.tar.* | head -n 1)
	log "source: unpacking $(basename "$orig")"
	rm -rf "$src" "$out/stamp"
	mkdir -p "$src"
	tar -xf "$orig" -C "$src" --strip-components=1 || die "source: cannot unpack $orig"
	tar -xf "$deb" -C "$src" || die "source: cannot unpack $deb"
	apply_series "$src/debian/patches" "$src/debian/patches/series" Debian
	apply_series "$patch_dir" "$patch_dir/series" rmig
}

configure_qemu() {
	local extra=() ldflags="-Wl,-rpath,$rmig_pfx/lib"
	extra+=(--enable-rdma)
	if grep -q "option('rmig'" "$src/meson_options.txt"; then
		extra+=(--enable-rmig)
	fi
	log "configure: ${extra[*]}"
	mkdir -p "$bld"
	(cd "$bld" && PKG_CONFIG_PATH="$rmig_pfx/lib/pkgconfig" ../configure \
		--target-list=x86_64-softmmu --disable-docs --disable-user --disable-tools \
		--disable-gtk --disable-sdl --disable-vnc --disable-spice --disable-opengl \
		--disable-xen --disable-werror --without-default-features --enable-tcg \
		--enable-fdt=system --disable-download --disable-install-blobs \
		--python="$venv/bin/python3" \
		--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu \
		--extra-ldflags="$ldflags" "${extra[@]}") >"$out/configure.log" 2>&1 ||
		{ tail -n 40 "$out/configure.log" >&2; die "configure failed (log: $out/configure.log)"; }
}

# The binary run from the build tree finds firmware under
# build/qemu-bundle/<firmwarepath>: point those at Debian 12's packages.
link_firmware() {
	local d
	for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
		[ -d "$d" ] || die "firmware: $d missing (qemu-system-data, seabios, ipxe-qemu)"
		mkdir -p "$bld/qemu-bundle$(dirname "$d")"
		ln -sfn "$d" "$bld/qemu-bundle$d"
	done
}

build_qemu() {
	log "build: ninja qemu-system-x86_64 in $bld"
	PKG_CONFIG_PATH="$rmig_pfx/lib/pkgconfig" ninja -C "$bld" -j "$jobs" qemu-system-x86_64 \
		>"$out/ninja.log" 2>&1 ||
		{ grep -B2 -A12 -m3 'FAILED\|error:' "$out/ninja.log" >&2 || tail -n 40 "$out/ninja.log" >&2
		  die "build failed (log: $out/ninja.log)"; }
	link_firmware
}

# --- main ------------------------------------------------------------------
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp_want" ] &&
	[ -f "$bld/build.ninja" ]; then
	log "incremental: $src matches the stamp"
	build_librmig
	build_qemu
else
	build_librmig
	fetch_sources
	make_tools
	make_tree
	configure_qemu
	# From here on a failed build is resumed by the next run, not redone.
	echo "$stamp_want" >"$out/stamp"
	build_qemu
fi

bin=$bld/qemu-system-x86_64
[ -x "$bin" ] || die "build: $bin missing after the build"
# (ldd's whole output first: grep -q stopping early would fail the pipe.)
libs=$(ldd "$bin") || die "build: ldd $bin failed"
if [ -n "$our_patches" ] && ! grep -q "librmig.so.0 => $rmig_pfx/lib/" <<<"$libs"; then
	die "build: $bin does not load librmig.so.0 from $rmig_pfx/lib"
fi
log "done in $(($(date +%s) - t_start)) s"
echo "$bin"
