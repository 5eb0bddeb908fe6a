"""summary_pool.py - the port and pool sections of summary.md (issues 5 and 6).

Called by bench/summary.py as sections(bench_json_path) -> list of markdown lines (empty
when the run has none of these families). Reads the JSON itself because these families
key their rows by benchmark arguments (consumers:, gap_us:, cutoff:), not by threads.
Python 3 standard library only. Also runnable alone: summary_pool.py RESULTS_DIR... (with
several folders, the medians are taken over every repetition of every run).
"""
import json
import os
import statistics
import sys
from collections import defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from summary import fmt as _fmt  # noqa: E402  (bench/summary.py: one number format)

FAMILIES = ("port_stream", "port_rt", "port_idle", "port_io", "pool_items", "pool_latency",
            "pool_idle", "pool_fj")
IGNORED_ARGS = {"min_warmup_time", "iterations", "real_time", "threads", "min_time",
                "repeats", "process_time", "manual_time"}


def _load(paths):
    benchmarks = []
    for path in paths:
        with open(path) as f:
            benchmarks += json.load(f).get("benchmarks", [])
    runs = defaultdict(lambda: defaultdict(list))
    errors = []
    for b in benchmarks:
        if b.get("run_type") != "iteration":
            continue
        parts = b["run_name"].split("/")
        fam = parts[0]
        if fam not in FAMILIES:
            continue
        impl = "/".join(parts[1:3]) if fam == "port_io" else parts[1]
        arg = ""
        for p in parts[2:]:
            if ":" in p and p.split(":")[0] not in IGNORED_ARGS:
                arg = p.split(":")[1]
        if b.get("error_occurred"):
            errors.append(f"{b['run_name']}: {b.get('error_message', 'error')}")
            continue
        for k, v in b.items():
            if isinstance(v, (int, float)):
                runs[(fam, impl, arg)][k].append(float(v))
    med = {k: {m: statistics.median(v) for m, v in ms.items()} for k, ms in runs.items()}
    return med, errors


def sections(path, more=()):
    paths = [p for p in [path, *more] if os.path.exists(p)]
    if not paths:
        return []
    med, errors = _load(paths)
    if not med and not errors:
        return []
    out = []

    def g(fam, impl, arg, m):
        return med.get((fam, impl, str(arg)), {}).get(m)

    def impls(fam):
        seen = []
        for (f, i, _a) in med:
            if f == fam and i not in seen:
                seen.append(i)
        return seen

    def args(fam):
        return sorted({a for (f, _i, a) in med if f == fam}, key=lambda a: int(a) if a.isdigit() else 0)

    def table(hdr, rows):
        out.append("| " + " | ".join(hdr) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(hdr))) + "|")
        for r in rows:
            out.append("| " + " | ".join(r) + " |")
        out.append("")

    def same(fam, impl, arg):
        v = g(fam, impl, arg, "same_cpu")
        return "" if v is None else f" [{v * 100:.0f}%]"

    def ratio(a, b):
        return a / b if a is not None and b else None

    goals = []

    def goal(text, value, ok):
        goals.append([text, value, "–" if ok is None else ("met" if ok else "**missed**")])

    out += ["## Completion port (`port_*`, issue 5)", ""]
    if errors:
        out.append("Runs that failed:")
        out += [f"- {e}" for e in errors]
        out.append("")
    cs = args("port_stream")
    if cs:
        out += ["Stream: the benchmark thread posts, k consumers take; wall ns per packet "
                "(process CPU ns per packet in brackets).", ""]
        rows = []
        for i in impls("port_stream"):
            rows.append([i] + [f"{_fmt(g('port_stream', i, c, 'ns_pkt'))} "
                               f"({_fmt(g('port_stream', i, c, 'cpu_ns_pkt'))})" for c in cs])
        for w in ("weft_port", "weft_port_many"):
            rows.append([f"*{w} / mutex_cond*"] + [
                _fmt(ratio(g("port_stream", w, c, "ns_pkt"), g("port_stream", "mutex_cond", c, "ns_pkt")), 2)
                for c in cs])
        table(["impl"] + [f"{c} consumer(s)" for c in cs], rows)
        for c in cs:
            v = ratio(g("port_stream", "weft_port", c, "ns_pkt"), g("port_stream", "mutex_cond", c, "ns_pkt"))
            goal(f"stream, {c} consumer(s): weft_port <= 0.5x mutex_cond", _fmt(v, 2) + "x" if v else "–",
                 None if v is None else v <= 0.5)
    cs = args("port_rt")
    if cs:
        out += ["Round trip through two channels (k helpers wait on the first): wall us "
                "(process CPU us in brackets) [share of sampled round trips where helper and "
                "benchmark thread were on the same CPU].", ""]
        rows = []
        for i in impls("port_rt"):
            rows.append([i] + [f"{_fmt(g('port_rt', i, c, 'rt_us'))} "
                               f"({_fmt(g('port_rt', i, c, 'cpu_us_rt'))}){same('port_rt', i, c)}"
                               for c in cs])
        table(["impl"] + [f"{c} helper(s)" for c in cs], rows)
        for c in cs:
            v = g("port_rt", "weft_port", c, "rt_us")
            goal(f"round trip, {c} helper(s): weft_port <= 2 us", f"{_fmt(v)} us" if v else "–",
                 None if v is None else v <= 2.0)
    if impls("port_idle"):
        rows = []
        for i in impls("port_idle"):
            rows.append([i, _fmt(g("port_idle", i, "", "cpu_us_idle")), _fmt(g("port_idle", i, "", "idle_ms"))])
        out += ["Idle consumer: its CPU us while blocked in take for the idle period.", ""]
        table(["impl", "CPU us", "idle ms"], rows)
        v, ms = g("port_idle", "weft_port", "", "cpu_us_idle"), g("port_idle", "weft_port", "", "idle_ms")
        if v is not None and ms:
            goal(f"idle consumer in weft_port_get burns < 2 ms CPU per 200 ms (here per {_fmt(ms)} ms)",
                 f"{_fmt(v)} us", v <= 2000.0 * ms / 200.0)
    if impls("port_io"):
        out += ["Asynchronous I/O, one child process per row (the port's backend is per process): "
                "wall us per operation (child CPU us in brackets).", ""]
        rows = [[i, f"{_fmt(g('port_io', i, '', 'us_op'))} ({_fmt(g('port_io', i, '', 'cpu_us_op'))})"]
                for i in impls("port_io")]
        table(["row", "us / op"], rows)
        for i in impls("port_io"):
            if "weft_uring" in i:
                e = i.replace("weft_uring", "weft_epoll")
                v = ratio(g("port_io", i, "", "us_op"), g("port_io", e, "", "us_op"))
                goal(f"{i} <= 1.0x {e.split('/')[-1]}", _fmt(v, 2) + "x" if v else "–",
                     None if v is None else v <= 1.0)

    out += ["## Thread pool (`pool_*`, issue 6)", ""]
    if impls("pool_items"):
        out += ["Empty items, submit N and wait for all: wall ns per item (process CPU ns in brackets).", ""]
        rows = [[i, f"{_fmt(g('pool_items', i, '', 'ns_item'))} ({_fmt(g('pool_items', i, '', 'cpu_ns_item'))})"]
                for i in impls("pool_items")]
        table(["pool", "ns / item"], rows)
        for w in ("weft_submit", "weft_work"):
            for peer, bound in (("libuv", 0.1), ("naive", 0.7)):
                v = ratio(g("pool_items", w, "", "ns_item"), g("pool_items", peer, "", "ns_item"))
                if v is not None:
                    goal(f"{w} time per item <= {bound}x {peer}", _fmt(v, 2) + "x", v <= bound)
    gs = args("pool_latency")
    if gs:
        out += ["Submit-to-start latency of one item on an idle pool, us: p50 / p99 / max "
                "(gap: sleep between items) [share of items that started on the submitter's CPU] "
                "{process CPU us per sample, gap included}.", ""]
        rows = []

        def cpu(i, a):
            v = g("pool_latency", i, a, "cpu_us_item")
            return "" if v is None else f" {{{_fmt(v)}}}"
        for i in impls("pool_latency"):
            rows.append([i] + [" / ".join(_fmt(g("pool_latency", i, a, m)) for m in
                                          ("start_p50_us", "start_p99_us", "start_max_us")) +
                               same("pool_latency", i, a) + cpu(i, a) for a in gs])
        table(["pool"] + [f"gap {a} us" for a in gs], rows)
        for a in gs:
            p50, p99 = g("pool_latency", "weft_submit", a, "start_p50_us"), g("pool_latency", "weft_submit", a, "start_p99_us")
            if p50 is not None:
                goal(f"weft_submit submit-to-start p50 <= 1 us (gap {a} us)", f"{_fmt(p50)} us", p50 <= 1.0)
                goal(f"weft_submit submit-to-start p99 <= 20 us (gap {a} us)", f"{_fmt(p99)} us", p99 <= 20.0)
    if impls("pool_idle"):
        rows = [[i, _fmt(g("pool_idle", i, "", "cpu_us_idle")), _fmt(g("pool_idle", i, "", "idle_ms"))]
                for i in impls("pool_idle")]
        out += ["Idle pool: process CPU us over the idle period after one item.", ""]
        table(["pool", "CPU us", "idle ms"], rows)
        v, ms = g("pool_idle", "weft_submit", "", "cpu_us_idle"), g("pool_idle", "weft_submit", "", "idle_ms")
        if v is not None and ms:
            goal(f"idle pool burns < 2 ms CPU per 200 ms (here per {_fmt(ms)} ms)", f"{_fmt(v)} us",
                 v <= 2000.0 * ms / 200.0)
    if impls("pool_fj"):
        seq = g("pool_fj", "seq", "", "ms_op")
        rows = [["seq", "", f"{_fmt(seq)} ({_fmt(g('pool_fj', 'seq', '', 'cpu_ms_op'))})", "1.00", ""]]
        for a in args("pool_fj"):
            if not a:
                continue
            v = g("pool_fj", "weft_work", a, "ms_op")
            rows.append(["weft_work", a, f"{_fmt(v)} ({_fmt(g('pool_fj', 'weft_work', a, 'cpu_ms_op'))})",
                         _fmt(ratio(seq, v), 2), _fmt(g("pool_fj", "weft_work", a, "injected"))])
        out += ["Fork-join Fibonacci: ms per fib, process CPU ms in brackets (speed-up = seq / row; 2 CPUs).", ""]
        table(["impl", "cutoff", "ms", "speed-up", "threads injected"], rows)
    if goals:
        out += ["## Goals of issues 5 and 6 (from this run)", ""]
        table(["goal", "measured", "verdict"], goals)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    jsons = [os.path.join(d, "bench.json") for d in sys.argv[1:]]
    print("\n".join(sections(jsons[0], jsons[1:])))
