#!/bin/bash
# run_http.sh - weft-server against nginx (and h2o) over HTTP/1.1, side by side in one run.
#
# Installs what is missing (apt-get: wrk, nginx-light, gnuplot-nox; h2o optional: its rows
# are skipped when the package is unavailable), builds weft-server in Release in its own
# build folder, creates one docroot with a small file and a 1 MiB file, then starts each
# server in turn on a free 127.0.0.1 port (weft-server with --backend uring and --backend
# epoll, nginx and h2o, each with its own config in a temporary folder, keep-alive, no
# access log, sendfile), drives it with wrk (keep-alive) at 1 and 2 server threads/workers,
# and stops it by pid. Every cell runs REPEAT times, interleaved across servers; medians
# are reported with the server's CPU time (utime+stime from /proc/<pid>/stat, all of its
# processes) beside req/s and throughput. The machine's parallelism check (two threads of
# a plain read loop against one) runs first. Writes http.md (one markdown table with
# ratios against nginx), http.png (gnuplot) and the raw logs into a results folder.
# No server outlives the script (trap on every exit path).
#
#   bench/net/run_http.sh [-B BUILD] [-o OUT] [-d SECS] [-r REPEAT] [-n "1 2"] [-c CONNS]
#                         [-t WRK_THREADS] [-s "weft-uring weft-epoll nginx h2o"]
#                         [-S SMALL_BYTES] [-w WEFT_SERVER] [-a "EXTRA WEFT ARGS"] [-I]
#
#   -B  build folder for weft-server (configured Release; default build-release-http in
#       the repository)
#   -w  use this weft-server binary instead of building one
#   -o  results folder (default results/net-http-<UTC time>)
#   -d  seconds of one wrk run (default 4)
#   -r  runs per cell, interleaved across servers; medians reported (default 3)
#   -n  server threads / workers (default "1 2")
#   -c  wrk connections (default 50)
#   -t  wrk threads (default 1: wrk -t1 -c50, the issue's reference)
#   -s  servers (default "weft-uring weft-epoll nginx h2o")
#   -S  size of the small file in bytes (default 150)
#   -a  extra arguments for weft-server (e.g. "--file-cache-ms 0")
#   -I  do not install anything (rows of missing servers read "not installed")
#   -p  pin: a server with N threads runs on the last N CPUs and wrk on the others
#       (taskset), so every server gets the same CPU budget whatever threads of its own
#       it runs (weft-server's port has a reaper thread beside its N port threads); a
#       cell with no CPU left for wrk runs unpinned
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cmdline=$(printf '%q ' "$0" "$@")
BUILD=$root/build-release-http
WEFT=
OUT=
DUR=4
REPEAT=3
NTHREADS="1 2"
CONNS=50
WTHREADS=1
SERVERS="weft-uring weft-epoll nginx h2o"
SMALL=150
WEFT_ARGS=
INSTALL=1
PIN=0

usage() { sed -n '2,/^set -euo pipefail$/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while getopts B:w:o:d:r:n:c:t:s:S:a:Iph opt; do
	case $opt in
	B) BUILD=$OPTARG ;; w) WEFT=$OPTARG ;; o) OUT=$OPTARG ;; d) DUR=$OPTARG ;;
	r) REPEAT=$OPTARG ;; n) NTHREADS=$OPTARG ;; c) CONNS=$OPTARG ;; t) WTHREADS=$OPTARG ;;
	s) SERVERS=$OPTARG ;; S) SMALL=$OPTARG ;; a) WEFT_ARGS=$OPTARG ;; I) INSTALL=0 ;; p) PIN=1 ;;
	h) usage 0 ;; *) usage ;;
	esac
done
for s in $SERVERS; do
	case $s in weft-uring|weft-epoll|nginx|h2o) ;; *) echo "run_http: unknown server '$s'" >&2; usage ;; esac
done
[ -n "$OUT" ] || OUT=$root/results/net-http-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)

# ---- what is needed -----------------------------------------------------------------------
have() { command -v "$1" > /dev/null 2>&1; }
install_pkgs() {
	[ "$INSTALL" = 1 ] || return 0
	local want=()
	have wrk || want+=(wrk)
	have nginx || [ -x /usr/sbin/nginx ] || want+=(nginx-light)
	have gnuplot || want+=(gnuplot-nox)
	[ ${#want[@]} -eq 0 ] || {
		local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
		echo "run_http: installing ${want[*]}" >&2
		$sudo apt-get install -y "${want[@]}" > "$OUT/raw/apt.log" 2>&1 ||
			{ $sudo apt-get update >> "$OUT/raw/apt.log" 2>&1 &&
			  $sudo apt-get install -y "${want[@]}" >> "$OUT/raw/apt.log" 2>&1; } ||
			echo "run_http: apt-get failed, see $OUT/raw/apt.log" >&2
	}
	# h2o is optional: its rows are skipped when the package is not available
	if ! have h2o && echo " $SERVERS " | grep -q ' h2o '; then
		local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
		$sudo apt-get install -y h2o >> "$OUT/raw/apt.log" 2>&1 ||
			echo "run_http: h2o not installable, its rows are skipped" >&2
	fi
}
install_pkgs
have wrk || { echo "run_http: wrk is required (apt-get install wrk)" >&2; exit 1; }
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
H2O=$(command -v h2o 2>/dev/null || true)

if [ -z "$WEFT" ]; then
	echo "run_http: building weft-server (Release) in $BUILD" >&2
	cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > "$OUT/raw/build.log" 2>&1
	cmake --build "$BUILD" -j2 --target weft-server weft_load >> "$OUT/raw/build.log" 2>&1 ||
		{ echo "run_http: build failed, see $OUT/raw/build.log" >&2; exit 1; }
	WEFT=$BUILD/net/weft-server
	LOAD=$BUILD/bench/net/weft_load
else
	LOAD=$(dirname "$WEFT")/../bench/net/weft_load
	if [ ! -x "$LOAD" ]; then
		cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > "$OUT/raw/build.log" 2>&1
		cmake --build "$BUILD" -j2 --target weft_load >> "$OUT/raw/build.log" 2>&1
		LOAD=$BUILD/bench/net/weft_load
	fi
fi

# ---- the docroot and the temporary folder ----------------------------------------------------
TMP=$(mktemp -d /tmp/weft-http-bench.XXXXXX)
chmod 755 "$TMP"
DOC=$TMP/www
mkdir -p "$DOC"
head -c "$SMALL" /dev/urandom | base64 -w 0 | head -c "$SMALL" > "$DOC/small.txt"
head -c 1048576 /dev/urandom > "$DOC/1m.bin"
chmod -R a+rX "$DOC"
CLK=$(getconf CLK_TCK)

SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2> /dev/null || true
		# weft-server drains for up to --shutdown-ms; nginx and h2o end their workers
		for _ in $(seq 50); do kill -0 "$SERVER_PID" 2> /dev/null || break; sleep 0.1; done
		kill -KILL "$SERVER_PID" 2> /dev/null || true
		wait "$SERVER_PID" 2> /dev/null || true
		SERVER_PID=
	fi
}
on_exit() { cleanup; rm -rf "$TMP"; }
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

cat > "$TMP/report.lua" << 'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("WRK requests=%d bytes=%d duration_us=%d sockerr=%d non2xx=%d p50_us=%d p99_us=%d\n",
		summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.timeout,
		e.status, latency:percentile(50), latency:percentile(99)))
end
EOF

# server_start NAME THREADS PORT: starts one server in the background (SERVER_PID); false
# when it is not installed.
# pin_for THREADS: sets SRV_PIN / WRK_PIN (taskset prefixes, empty when unpinned).
NCPU=$(nproc)
pin_for() {
	SRV_PIN=() WRK_PIN=()
	if [ "$PIN" = 1 ] && [ "$1" -lt "$NCPU" ]; then
		SRV_PIN=(taskset -c "$((NCPU - $1))-$((NCPU - 1))")
		WRK_PIN=(taskset -c "0-$((NCPU - $1 - 1))")
	fi
}

server_start() {
	local name=$1 n=$2 port=$3 dir=$TMP/$1-$2
	mkdir -p "$dir"
	pin_for "$n"
	case $name in
	weft-*)
		"${SRV_PIN[@]}" "$WEFT" --mode http --root "$DOC" --listen "127.0.0.1:$port" --threads "$n" \
			--backend "${name#weft-}" $WEFT_ARGS >> "$OUT/raw/$name-$n.server" 2>&1 &
		SERVER_PID=$!
		;;
	nginx)
		[ -x "$NGINX" ] || return 1
		mkdir -p "$dir/tmp"
		cat > "$dir/nginx.conf" << EOF
worker_processes $n;
pid $dir/nginx.pid;
daemon off;
master_process on;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_timeout 65;
	keepalive_requests 100000000;
	open_file_cache max=1000 inactive=20s;
	open_file_cache_valid 1s;
	client_body_temp_path $dir/tmp/body;
	types { text/plain txt; application/octet-stream bin; }
	server {
		listen 127.0.0.1:$port;
		root $DOC;
		location / { }
	}
}
EOF
		"${SRV_PIN[@]}" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >> "$OUT/raw/$name-$n.server" 2>&1 &
		SERVER_PID=$!
		;;
	h2o)
		[ -n "$H2O" ] || return 1
		cat > "$dir/h2o.conf" << EOF
listen:
  host: 127.0.0.1
  port: $port
num-threads: $n
pid-file: $dir/h2o.pid
error-log: $dir/error.log
user: $(id -un)
hosts:
  "127.0.0.1:$port":
    paths:
      "/":
        file.dir: $DOC
EOF
		"${SRV_PIN[@]}" "$H2O" -c "$dir/h2o.conf" >> "$OUT/raw/$name-$n.server" 2>&1 &
		SERVER_PID=$!
		;;
	esac
	return 0
}

# cpu_ticks PID: utime+stime of PID and its child processes (nginx's workers), in ticks.
cpu_ticks() {
	local pids="$1 $(pgrep -P "$1" 2> /dev/null | tr '\n' ' ')" t=0 p
	for p in $pids; do
		# fields after the ")" of comm: state is 1st, utime 12th, stime 13th
		local f
		f=$(sed 's/.*) //' "/proc/$p/stat" 2> /dev/null) || continue
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo $t
}

# run_cell NAME THREADS REP: one server start, every file once, one stop.
run_cell() {
	local name=$1 n=$2 rep=$3 port file
	port=$("$LOAD" --free-port)
	if ! server_start "$name" "$n" "$port"; then
		echo "not installed" > "$OUT/raw/$name-$n.why"
		return
	fi
	if ! "$LOAD" --wait-port "$port" -T 10 2>> "$OUT/raw/$name-$n.server"; then
		echo "did not start" > "$OUT/raw/$name-$n.why"
		cleanup
		return
	fi
	for file in small.txt 1m.bin; do
		local url=http://127.0.0.1:$port/$file tag=$name-$n-$file
		# a short warm-up (page cache, open-file caches, connections), then the run
		"${WRK_PIN[@]}" wrk -t"$WTHREADS" -c"$CONNS" -d1s "$url" > /dev/null 2>&1 || true
		local c0 c1 out
		c0=$(cpu_ticks "$SERVER_PID")
		out=$("${WRK_PIN[@]}" wrk -t"$WTHREADS" -c"$CONNS" -d"${DUR}s" -s "$TMP/report.lua" "$url" 2>&1) || true
		c1=$(cpu_ticks "$SERVER_PID")
		{ echo "== run $rep"; echo "$out"; } >> "$OUT/raw/$tag.wrk"
		local line
		line=$(echo "$out" | grep '^WRK ' | tail -n 1)
		[ -n "$line" ] && echo "$line cpu_ticks=$((c1 - c0))" >> "$OUT/raw/$tag.results"
	done
	cleanup
}

field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# ---- the run ------------------------------------------------------------------------------------
PAR=$("$LOAD" --parallel-check)
echo "run_http: $PAR" >&2
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
for n in $NTHREADS; do for s in $SERVERS; do
	rm -f "$OUT/raw/$s-$n".* "$OUT/raw/$s-$n-"*
done; done
T0=$(date +%s)
for rep in $(seq "$REPEAT"); do
	for n in $NTHREADS; do
		for s in $SERVERS; do
			echo "run_http: run $rep, $n thread(s), $s" >&2
			run_cell "$s" "$n" "$rep"
		done
	done
done
T1=$(date +%s)
PAR_AFTER=$("$LOAD" --parallel-check)
echo "run_http: after: $PAR_AFTER" >&2

# median VALUES...: the middle value (lower middle for an even count)
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

label() {
	case $1 in
	weft-*) echo "weft-server (${1#weft-})" ;; nginx) echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///')" ;;
	h2o) echo "h2o $("$H2O" --version 2>/dev/null | head -n1 | awk '{print $3}')" ;;
	esac
}

# Per cell: median req/s, MiB/s, server CPU seconds per run, CPU us per request.
declare -A RPS MIBS CPUS CPUR ERRS ALL
for n in $NTHREADS; do for s in $SERVERS; do for f in small.txt 1m.bin; do
	k=$s-$n-$f
	res=$OUT/raw/$k.results
	[ -s "$res" ] || continue
	r=() m=() c=() u=() e=0
	while read -r line; do
		req=$(field requests "$line"); by=$(field bytes "$line"); us=$(field duration_us "$line")
		tk=$(field cpu_ticks "$line")
		r+=("$(awk -v a="$req" -v d="$us" 'BEGIN { printf "%.0f", a / (d / 1e6) }')")
		m+=("$(awk -v a="$by" -v d="$us" 'BEGIN { printf "%.1f", a / 1048576 / (d / 1e6) }')")
		c+=("$(awk -v t="$tk" -v k="$CLK" 'BEGIN { printf "%.2f", t / k }')")
		u+=("$(awk -v t="$tk" -v k="$CLK" -v a="$req" 'BEGIN { printf "%.2f", a ? t / k / a * 1e6 : 0 }')")
		e=$((e + $(field sockerr "$line") + $(field non2xx "$line")))
	done < "$res"
	RPS[$k]=$(median "${r[@]}"); MIBS[$k]=$(median "${m[@]}"); CPUS[$k]=$(median "${c[@]}")
	CPUR[$k]=$(median "${u[@]}"); ERRS[$k]=$e; ALL[$k]=$(printf '%s\n' "${r[@]}" | sort -n | tr '\n' ' ' | sed 's/ $//')
done; done; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2fx", a / b; else print "-" }'; }
{
	echo "# HTTP/1.1 file serving: weft-server vs nginx vs h2o (wrk, keep-alive, 127.0.0.1)"
	echo
	echo "- date: $START to $(date -u '+%H:%M UTC'); host: $(uname -srm); CPUs: $(nproc); commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "- parallelism check (2 threads of a read loop vs 1): before: ${PAR#PARALLEL }; after: ${PAR_AFTER#PARALLEL } (>= 1.7 trustworthy)"
	echo "- loadavg before: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg); wall time of the runs: $((T1 - T0)) s"
	if [ "$PIN" = 1 ]; then
		echo "- load: wrk -t$WTHREADS -c$CONNS -d${DUR}s (after a 1 s warm-up) per run, $REPEAT runs per cell interleaved across servers, medians; pinned (-p): a server with N threads on the last N of the $NCPU CPUs and wrk on the others (taskset), unpinned where no CPU is left for wrk"
	else
		echo "- load: wrk -t$WTHREADS -c$CONNS -d${DUR}s (after a 1 s warm-up) per run, $REPEAT runs per cell interleaved across servers, medians; the wrk client shares the CPUs with the server"
	fi
	echo "- files: small.txt ($SMALL B), 1m.bin (1 MiB); threads = weft-server --threads, nginx worker_processes, h2o num-threads"
	echo "- weft-server: $WEFT --mode http ${WEFT_ARGS} (repository HEAD above; a -w binary may be older); nginx: sendfile, tcp_nopush, open_file_cache, access_log off, keepalive_requests 1e8; h2o: defaults (file.dir)"
	echo "- CPU: the server's utime+stime during the timed run (all its processes/threads), from /proc/<pid>/stat"
	echo "- command: $cmdline"
	echo
	echo "| file | threads | server | req/s | vs nginx | MiB/s | server CPU s | CPU us/req | errors | req/s of every run |"
	echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"
	for f in small.txt 1m.bin; do for n in $NTHREADS; do for s in $SERVERS; do
		k=$s-$n-$f
		if [ -z "${RPS[$k]:-}" ]; then
			echo "| $f | $n | $s | $(cat "$OUT/raw/$s-$n.why" 2>/dev/null || echo "no result") | | | | | | |"
			continue
		fi
		echo "| $f | $n | $(label "$s") | ${RPS[$k]} | $(ratio "${RPS[$k]}" "${RPS[nginx-$n-$f]:-}") | ${MIBS[$k]} |" \
		     "${CPUS[$k]} | ${CPUR[$k]} | ${ERRS[$k]} | ${ALL[$k]} |"
	done; done; done
} > "$OUT/http.md"

# ---- the chart: req/s of the small file, MiB/s of the 1 MiB file ---------------------------------
for f in small.txt 1m.bin; do
	{
		printf 'server'
		for n in $NTHREADS; do printf ' "%s thread(s)"' "$n"; done
		echo
		for s in $SERVERS; do
			printf '"%s"' "$s"
			for n in $NTHREADS; do
				k=$s-$n-$f
				if [ "$f" = small.txt ]; then printf ' %s' "${RPS[$k]:-0}"; else printf ' %s' "${MIBS[$k]:-0}"; fi
			done
			echo
		done
	} > "$OUT/http-$f.dat"
done
if have gnuplot; then
	ncols=$(echo $NTHREADS | wc -w)
	plot_cols() {
		printf "plot '%s' using 2:xtic(1) title columnheader(2)" "$1"
		j=3; while [ $j -le $((ncols + 1)) ]; do printf ", '' using %d title columnheader(%d)" $j $j; j=$((j + 1)); done
		echo
	}
	{
		echo "set terminal pngcairo size 1100,500 noenhanced"
		echo "set output '$OUT/http.png'"
		echo "set multiplot layout 1,2 title 'HTTP keep-alive, wrk -t$WTHREADS -c$CONNS, 127.0.0.1 (median of $REPEAT)'"
		echo "set style data histograms; set style histogram clustered gap 1"
		echo "set style fill solid 0.8 border -1; set boxwidth 0.9; set grid ytics; set yrange [0:*]"
		echo "set key top right; set xtics noenhanced"
		echo "set title '$SMALL B file'; set ylabel 'requests/s'"
		plot_cols "$OUT/http-small.txt.dat"
		echo "set title '1 MiB file'; set ylabel 'MiB/s'"
		plot_cols "$OUT/http-1m.bin.dat"
		echo "unset multiplot"
	} > "$OUT/http.gp"
	gnuplot "$OUT/http.gp" 2>> "$OUT/raw/gnuplot.log" || echo "run_http: gnuplot failed, see $OUT/raw/gnuplot.log" >&2
fi
cat "$OUT/http.md"
echo "results in $OUT" >&2
