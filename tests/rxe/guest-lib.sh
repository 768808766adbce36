# Helpers for commands run by rxe-vm.sh inside a guest (bash). The harness
# sources this file before the command, so these functions are available
# to --sh / --dst / --src strings and to `single -- CMD` alike. Scripts the
# command starts can source "$RXE_LIB/guest-lib.sh" themselves.

# Tell the src guest that this (dst) guest is ready. Needed with
# `--ready manual`; with the default `--ready auto` the harness notices the
# first listening socket by itself.
rxe_ready() {
	touch "$OUT/dst.ready"
}

# True if a TCP socket listens on local port $1 (any address).
rxe_tcp_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6 2> /dev/null
}

# True if an rdma_cm id listens on port $1 (rdma_cm ports are not TCP ports).
rxe_cm_listening() {
	rdma resource show cm_id 2> /dev/null | grep -Eq "state LISTEN .*src-addr [^ ]*:$1( |$)"
}

# True if anything listens: a TCP socket or an rdma_cm id.
rxe_any_listener() {
	awk 'FNR > 1 && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2> /dev/null ||
		rdma resource show cm_id 2> /dev/null | grep -q 'state LISTEN'
}

# rxe_wait_listen PORT [TIMEOUT_S=30]: wait until a local TCP socket or
# rdma_cm id listens on PORT. Use it in one guest to start a client after
# its server (it only looks, it never connects, so one-shot servers such as
# perftest's are not disturbed).
rxe_wait_listen() {
	local port=$1 tmo=${2:-30} i
	for ((i = 0; i < tmo * 10; i++)); do
		if rxe_tcp_listening "$port" || rxe_cm_listening "$port"; then
			return 0
		fi
		sleep 0.1
	done
	echo "rxe_wait_listen: nothing listens on port $port after ${tmo}s" >&2
	return 1
}

# rxe_retry TRIES DELAY_S CMD [ARGS...]: run CMD until it succeeds, at most
# TRIES times, sleeping DELAY_S between tries. Returns CMD's last status.
rxe_retry() {
	local tries=$1 delay=$2 i rc=0
	shift 2
	for ((i = 1; i <= tries; i++)); do
		"$@" && return 0
		rc=$?
		((i < tries)) && sleep "$delay"
	done
	return "$rc"
}

# Visible to child bash processes too (e.g. `single -- bash script.sh`).
export -f rxe_ready rxe_tcp_listening rxe_cm_listening rxe_any_listener rxe_wait_listen rxe_retry
