#!/bin/sh
# run_models.sh - the I/O models, measured side by side in one run.
#
# Starts each echo server (thread-per-connection, select, poll, epoll and, once it exists,
# the completion-port model weft-server --mode echo) on a free 127.0.0.1 port, drives the
# same load at it with weft_load, stops it by pid, and writes one markdown table, one
# gnuplot chart and the raw logs into a results folder. Everything stays on 127.0.0.1.
#
#   bench/net/run_models.sh -b BUILD/bench/net [-o OUT] [-c "10 100 1000"] [-N TOTAL]
#                           [-s SIZE] [-t LOAD_THREADS] [-r REPEAT] [-T MAX_SECS]
#                           [-w WEFT_SERVER] [-P PORT_THREADS] [-m MODELS]
#
#   -b  folder holding weft_load and echo_* (default: build/bench/net)
#   -o  results folder (default: results/net-models-<UTC time>)
#   -c  connection counts, one table row per model and count (default "10 100 1000")
#   -N  messages per scenario in total, split evenly over the connections (default 200000)
#   -s  message size in bytes (default 64)
#   -t  load generator threads (default 1)
#   -r  runs per cell, interleaved across models (all cells once, then again); the run
#       with the median req/s is reported, the others listed (default 1)
#   -T  time bound of one load run in seconds (default 60)
#   -w  weft-server binary for the port model (default: searched beside the build,
#       then in PATH; the row reads "not built" when absent)
#   -P  port threads of weft-server (default 1, like the single-threaded select, poll
#       and epoll servers; the port also runs its own reaper thread)
#   -m  models to run, from: thread select poll epoll port port-uring port-epoll
#       (port: the port's default backend; port-uring/port-epoll force one;
#       default "thread select poll epoll port-uring port-epoll")
set -eu

BIN=build/bench/net
OUT=
CONNS="10 100 1000"
TOTAL=200000
SIZE=64
LTHREADS=1
REPEAT=1
MAXS=60
WEFT_SERVER=
MODELS="thread select poll epoll port-uring port-epoll"
PTHREADS=1

usage() { sed -n '2,/^set -eu$/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while getopts b:o:c:N:s:t:r:T:w:m:P:h opt; do
	case $opt in
	b) BIN=$OPTARG ;; o) OUT=$OPTARG ;; c) CONNS=$OPTARG ;; N) TOTAL=$OPTARG ;;
	s) SIZE=$OPTARG ;; t) LTHREADS=$OPTARG ;; r) REPEAT=$OPTARG ;; T) MAXS=$OPTARG ;;
	w) WEFT_SERVER=$OPTARG ;; m) MODELS=$OPTARG ;; P) PTHREADS=$OPTARG ;; h) usage 0 ;; *) usage ;;
	esac
done
for m in $MODELS; do
	case $m in thread|select|poll|epoll|port|port-uring|port-epoll) ;;
	*) echo "run_models: unknown model '$m'" >&2; usage ;;
	esac
done
LOAD=$BIN/weft_load
[ -x "$LOAD" ] || { echo "run_models: no weft_load in $BIN (build first, or pass -b)" >&2; exit 2; }
[ -n "$OUT" ] || OUT=results/net-models-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/raw"

# The port model: weft-server --mode echo (issue 7), found beside the build or in PATH.
if [ -z "$WEFT_SERVER" ]; then
	for cand in "$BIN/../../net/weft-server/weft-server" "$BIN/../../net/weft-server" \
	            "$BIN/../../weft-server"; do
		if [ -f "$cand" ] && [ -x "$cand" ]; then WEFT_SERVER=$cand; break; fi
	done
	[ -n "$WEFT_SERVER" ] || WEFT_SERVER=$(command -v weft-server 2>/dev/null || true)
fi

SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# server_cmd MODEL PORT: the command line of one model's server; empty when not built.
server_cmd() {
	case $1 in
	port) [ -n "$WEFT_SERVER" ] && echo "$WEFT_SERVER --mode echo --listen 127.0.0.1:$2 --threads $PTHREADS" ;;
	port-*) [ -n "$WEFT_SERVER" ] && \
		echo "$WEFT_SERVER --mode echo --listen 127.0.0.1:$2 --threads $PTHREADS --backend ${1#port-}" ;;
	*) [ -x "$BIN/echo_$1" ] && echo "$BIN/echo_$1 -p $2 -T $((MAXS * REPEAT * 4 + 60))" ;;
	esac
}

label() {
	case $1 in
	thread) echo "thread per connection" ;; select) echo "select" ;; poll) echo "poll" ;;
	epoll) echo "epoll (event-driven)" ;; port) echo "completion port (weft-server, $PTHREADS thread(s))" ;;
	port-*) echo "completion port, ${1#port-} (weft-server, $PTHREADS thread(s))" ;;
	esac
}

# field KEY LINE: value of KEY=... in a RESULT line.
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

{
	echo "# I/O models: echo, $SIZE-byte messages, pipeline depth 1, 127.0.0.1"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(uname -srm); CPUs: $(nproc)"
	echo "- commit: $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "- load: $TOTAL messages per cell split over the connections; $LTHREADS load thread(s);"
	echo "  $REPEAT run(s) per cell, interleaved across models; the run with the median req/s is"
	echo "  reported; loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- command: $0 -b $BIN -c \"$CONNS\" -N $TOTAL -s $SIZE -t $LTHREADS -r $REPEAT -T $MAXS -P $PTHREADS"
	echo "- port model: ${WEFT_SERVER:-not built} ${WEFT_BACKEND:+(WEFT_BACKEND=$WEFT_BACKEND)}"
	echo
	echo "| model | conns | req/s | p50 us | p99 us | max us | errors | req/s of every run |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
} > "$OUT/models.md"
printf 'model' > "$OUT/models.dat"
for c in $CONNS; do printf ' "%s conns"' "$c" >> "$OUT/models.dat"; done
echo >> "$OUT/models.dat"

short() {
	case $1 in thread) echo "thread/conn" ;; port) echo "port (weft)" ;; port-*) echo "port/${1#port-}" ;; *) echo "$1" ;; esac
}

# One cell: MODEL CONNS REP. Starts the server, runs the load once, stops the server by
# pid; appends the RESULT line to raw/MODEL-cCONNS.results, or records why it did not run.
run_cell() {
	m=$1 c=$2 rep=$3
	log=$OUT/raw/$m-c$c
	n=$((TOTAL / c)); [ "$n" -gt 0 ] || n=1
	port=$("$LOAD" --free-port)
	cmd=$(server_cmd "$m" "$port" || true)
	if [ -z "$cmd" ]; then
		echo "not built" > "$log.why"
		return
	fi
	echo "== run $rep: $cmd" >> "$log.server"
	$cmd >> "$log.server" 2>&1 &
	SERVER_PID=$!
	if "$LOAD" --wait-port "$port" -T 10 2>> "$log.server"; then
		echo "== run $rep" >> "$log.load"
		"$LOAD" -p "$port" -c "$c" -n "$n" -s "$SIZE" -t "$LTHREADS" -T "$MAXS" \
			>> "$log.load" 2>&1 || true
		grep '^RESULT' "$log.load" | tail -n 1 >> "$log.results"
	else
		echo "did not start" > "$log.why"
	fi
	cleanup; SERVER_PID=
}

# Repetitions are interleaved (every model and count once, then again), so a burst of
# background load on a shared machine is spread over all models instead of sinking one.
for m in $MODELS; do for c in $CONNS; do rm -f "$OUT/raw/$m-c$c.results" "$OUT/raw/$m-c$c.why"; done; done
rep=1
while [ $rep -le "$REPEAT" ]; do
	for m in $MODELS; do
		for c in $CONNS; do
			run_cell "$m" "$c" "$rep"
		done
	done
	rep=$((rep + 1))
done

for m in $MODELS; do
	row="\"$(short "$m")\""
	built=0
	for c in $CONNS; do
		log=$OUT/raw/$m-c$c
		if [ ! -s "$log.results" ]; then
			echo "| $(label "$m") | $c | $(cat "$log.why" 2>/dev/null || echo "no result") | | | | | |" >> "$OUT/models.md"
			row="$row 0"
			continue
		fi
		# The run with the median req/s (the lower middle for an even count).
		runs=$(wc -l < "$log.results")
		res=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^rps=/) { split($i, a, "="); print a[2], $0 } }' \
			"$log.results" | sort -n | awk -v k=$(( (runs + 1) / 2 )) 'NR == k { $1 = ""; print }')
		rps=$(field rps "$res"); err=$(field errors "$res"); to=$(field timed_out "$res")
		[ "$to" = 1 ] && err="$err (timed out)"
		all=$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' "$log.results" | sort -n | tr '\n' ' ' | sed 's/ $//')
		echo "| $(label "$m") | $c | $rps | $(field p50_us "$res") | $(field p99_us "$res") |" \
		     "$(field max_us "$res") | $err | $all |" >> "$OUT/models.md"
		row="$row ${rps:-0}"
		built=1
		echo "$m c=$c: $res" >&2
	done
	# Models that did not run stay in the table but out of the chart.
	[ "$built" = 0 ] || echo "$row" >> "$OUT/models.dat"
done
echo >> "$OUT/models.md"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/models.md"

if command -v gnuplot > /dev/null 2>&1; then
	ncols=$(echo $CONNS | wc -w)
	{
		echo "set terminal pngcairo size 900,500 noenhanced"
		echo "set output '$OUT/models.png'"
		echo "set title 'Echo req/s by I/O model ($SIZE B messages, depth 1, 127.0.0.1)'"
		echo "set style data histograms; set style histogram clustered gap 1"
		echo "set style fill solid 0.8 border -1; set boxwidth 0.9"
		echo "set ylabel 'requests/s'; set yrange [0:*]; set grid ytics"
		echo "set key top right; set xtics noenhanced"
		printf "plot '%s' using 2:xtic(1) title columnheader(2)" "$OUT/models.dat"
		j=3; while [ $j -le $((ncols + 1)) ]; do printf ", '' using %d title columnheader(%d)" $j $j; j=$((j + 1)); done
		echo
	} > "$OUT/models.gp"
	gnuplot "$OUT/models.gp" 2>> "$OUT/raw/gnuplot.log" || echo "run_models: gnuplot failed, see $OUT/raw/gnuplot.log" >&2
else
	echo "run_models: gnuplot not found (package gnuplot-nox), no chart" >&2
fi
cat "$OUT/models.md"
echo "results in $OUT" >&2
