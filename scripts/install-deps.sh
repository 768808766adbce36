#!/usr/bin/env bash
# Install what rmig needs to build, test and benchmark on Debian 12 (run as root).
set -euo pipefail

pkgs=(
	build-essential meson ninja-build pkg-config
	libibverbs-dev librdmacm-dev ibverbs-providers rdma-core
	libnuma-dev libcmocka-dev
	# libcrypto (OpenSSL): HMAC-SHA256 and RAND_bytes for authentication, TLS
	libssl-dev
	# the TLS tests make throw-away certificates (tests/common/make-test-certs.sh)
	openssl
	iperf3 python3
	# sanitizers: gcc's ThreadSanitizer runtime; clang with libFuzzer (fuzz/)
	libasan8 libubsan1 libtsan2 clang libclang-rt-14-dev llvm
	# man pages rendered and checked (tests/unit/man-check.sh); the ABI
	# recorded in abi/ compared with the built library (tests/unit/abi-check.sh)
	groff-base abigail-tools
	# bench/plot.py and bench/plot_sweep.py draw PNGs (tests/unit/plot-check.sh);
	# debian/ is built, linted and installed by tests/pkg/pkg-test.sh
	python3-matplotlib debhelper dpkg-dev fakeroot lintian man-db
)
# The rxe suite boots QEMU guests with Debian's kernel and soft-RoCE.
rxe_pkgs=(
	qemu-system-x86 linux-image-amd64 busybox-static kmod iproute2 xz-utils
	ibverbs-utils rdmacm-utils perftest
)

# integrations/qemu/build.sh builds QEMU 10 (Debian 13's source) against
# librmig; meson >= 1.5 comes from trixie's binary package, not from here.
qemu_pkgs=(
	libglib2.0-dev libpixman-1-dev flex bison libfdt-dev ninja-build
	python3-venv pkg-config dpkg-dev xz-utils libibverbs-dev librdmacm-dev
	qemu-system-data seabios ipxe-qemu
)

want=("${pkgs[@]}")
for arg in "$@"; do
	case $arg in
	--with-rxe) want+=("${rxe_pkgs[@]}") ;;
	--with-qemu) want+=("${qemu_pkgs[@]}") ;;
	*) echo "usage: $0 [--with-rxe] [--with-qemu]" >&2; exit 2 ;;
	esac
done

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: everything is installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
