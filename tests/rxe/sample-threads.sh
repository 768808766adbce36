#!/bin/bash
# sample-threads.sh PID: while PID runs, print a line per thread as often as it
# can (builtins only, so a TCG guest keeps up): "comm allowed-CPUs current-CPU"
# (status Cpus_allowed_list, stat field 39).
pid=${1:?pid}
while [ -d /proc/"$pid" ]; do
	# threads come and go: a file that vanished is skipped
	for t in /proc/"$pid"/task/*; do {
		read -r c < "$t/comm" 2> /dev/null || continue
		a=
		while read -r k v; do
			[ "$k" = Cpus_allowed_list: ] && a=$v
		done < "$t/status" 2> /dev/null
		read -r line < "$t/stat" 2> /dev/null || continue
		line=${line##*) }
		# shellcheck disable=SC2086 # split the fields
		set -- $line
		echo "$c $a ${37}"
	} 2> /dev/null; done
done
