#!/usr/bin/env python3
"""summary.py RESULTS_DIR - turn weft-bench's Google Benchmark JSON into summary.md and charts.

Reads RESULTS_DIR/bench.json (and machine.txt if present), takes the median of every
metric over the repetitions, and writes RESULTS_DIR/summary.md: the family tables, ratios
against the named peers, the seed's ranking and the goals of issue 4; then one gnuplot
chart (SVG and PNG) of throughput against threads per family. Python 3 standard library
only; gnuplot is optional (charts are skipped without it). Exits 3 when a run failed its
own correctness check (a lost update or a torn read), so CI notices.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

# Ratios reported in the summary: (weft row, peer row). Lower ns/op is better, so a ratio
# below 1.0 means weft is faster.
LOCK_PAIRS = [
    ("weft_cs", "pthread_mutex"),
    ("weft_cs", "pthread_mutex_adaptive"),
    ("weft_spin", "ck_spinlock_fas"),
    ("weft_spin", "pthread_spin"),
    ("weft_ticket", "ck_spinlock_ticket"),
    ("weft_mcs", "ck_spinlock_mcs"),
    ("weft_srw_excl", "pthread_rwlock_wr"),
    ("weft_mutex_obj", "pthread_mutex"),
]
RW_PAIRS = [("weft_srw", "pthread_rwlock"), ("weft_srw", "pthread_rwlock_pw"), ("weft_srw", "ck_rwlock")]
RANKING = [
    ("volatile read", "volatile_read"),
    ("volatile write", "volatile_write"),
    ("interlocked increment", "interlocked_inc"),
    ("SRW lock (exclusive)", "weft_srw_excl"),
    ("critical section", "weft_cs"),
    ("mutex object", "weft_mutex_obj"),
]


KNOWN = ("lock", "wstarve", "pingpong", "pingpong_pinned", "idle", "shim")
META = ("real_time", "process_time", "threads:", "iterations:", "min_time:",
        "min_warmup_time:", "repeats:", "manual_time")


def parse_name(run_name):
    """'lock/weft_cs/real_time/threads:2' -> ('lock', 'weft_cs'). In other units' families
    the arguments stay in the row name ('waitany_ready/weft/n:64' -> 'weft/n:64')."""
    parts = run_name.split("/")
    family = parts[0]
    impl = parts[1] if len(parts) > 1 else ""
    if family == "shim" and len(parts) > 2 and parts[2].isdigit():
        impl += "/" + parts[2]
    elif family not in KNOWN and not family.startswith("rw"):
        impl = "/".join(p for p in parts[1:] if not p.startswith(META))
    return family, impl


def load(path):
    with open(path) as f:
        data = json.load(f)
    runs = defaultdict(lambda: defaultdict(list))  # (family, impl, threads) -> metric -> values
    order = {}  # (family, impl) -> registration order, whatever order the runs came in
    errors = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") != "iteration":
            continue
        family, impl = parse_name(b["run_name"])
        key = (family, impl, int(b.get("threads", 1)))
        rank = (b.get("family_index", 0), b.get("per_family_instance_index", 0))
        order[(family, impl)] = min(order.get((family, impl), rank), rank)
        if b.get("error_occurred"):
            errors[key] = b.get("error_message", "error")
            continue
        m = runs[key]
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}.get(b.get("time_unit", "ns"), 1.0)
        m["real_ns"].append(b["real_time"] * scale)
        m["cpu_ns"].append(b["cpu_time"] * scale)
        for k, v in b.items():
            if isinstance(v, (int, float)) and k not in (
                "real_time", "cpu_time", "iterations", "threads", "repetitions",
                "repetition_index", "family_index", "per_family_instance_index"):
                m[k].append(float(v))
    # Rows in registration order (the runs may have been interleaved at random).
    keys = sorted(runs, key=lambda k: (order[(k[0], k[1])], k[2]))
    med = {k: {mk: statistics.median(mv) for mk, mv in runs[k].items()} for k in keys}
    nreps = max((len(m["real_ns"]) for m in runs.values()), default=0)
    return data.get("context", {}), med, errors, nreps


def fmt(v, digits=3):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


class Summary:
    def __init__(self, ctx, med, errors, nreps):
        self.ctx, self.med, self.errors, self.nreps = ctx, med, errors, nreps
        self.out = []

    def get(self, family, impl, threads, metric):
        return self.med.get((family, impl, threads), {}).get(metric)

    def impls(self, family):
        seen = []
        for (f, i, _t) in self.med:
            if f == family and i not in seen:
                seen.append(i)
        return seen

    def threads(self, family):
        return sorted({t for (f, _i, t) in self.med if f == family})

    def ns(self, family, impl, threads):
        """ns/op, marked with a dagger when the run hit its time cap (collapsed)."""
        v = self.get(family, impl, threads, "ns_op")
        mark = "†" if (self.get(family, impl, threads, "capped") or 0) >= 0.5 else ""
        return fmt(v) + mark

    def line(self, s=""):
        self.out.append(s)

    def table(self, header, rows):
        self.line("| " + " | ".join(header) + " |")
        self.line("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for r in rows:
            self.line("| " + " | ".join(r) + " |")
        self.line()

    def ratio(self, a, b):
        return a / b if a is not None and b else None

    # ---- sections -----------------------------------------------------------------------
    def header(self, machine):
        c = self.ctx
        self.line(f"# weft contention benchmark - {c.get('date', '')}")
        self.line()
        self.line(f"Mode: **{c.get('mode', '?')}**, medians of {self.nreps} repetition(s). "
                  "ns/op is wall-clock nanoseconds per operation with all threads together "
                  "(lower is better); ratios are weft / peer (below 1.0: weft is faster).")
        self.line()
        pr = c.get("parallel_ratio")
        if pr is not None:
            prf = float(pr)
            verdict = ("OK: contended figures can be trusted" if prf >= 1.7 else
                       "**FLAGGED: the two CPUs were not really parallel during this run; "
                       "treat the 2+ thread figures as unreliable**")
            self.line(f"Parallelism check: two threads of a read loop did **{prf:.2f}x** the work "
                      f"of one - {verdict}.")
            self.line()
        if machine:
            self.line("```")
            self.line(machine.strip())
            self.line(f"loadavg at start of run: {c.get('loadavg_at_start', '?')}")
            self.line("```")
            self.line()
        if self.errors:
            self.line("Runs that failed their own correctness check:")
            for (f, i, t), msg in sorted(self.errors.items()):
                self.line(f"- {f}/{i} threads:{t}: {msg}")
            self.line()

    def lock_section(self):
        fam = "lock"
        ts = self.threads(fam)
        if not ts:
            return
        self.line("## Mutual exclusion (`lock/*`): ns/op")
        self.line()
        self.line("Each op: lock, increment a shared counter (own cache line), unlock, a little "
                  "private work. fair = min/max ops per thread over the common window (1.0 is "
                  "perfectly fair). collapse = ns/op at the most threads / ns/op at 2. † = the run hit "
                  "its time cap (the lock collapsed; ns/op is over the ops done by then).")
        self.line()
        tmax = max(ts)
        hdr = ["lock"] + [f"{t} thr" for t in ts] + [f"Mops/s @{t}" for t in ts if t in (2,)]
        hdr += [f"fair @{t}" for t in ts if t in (2, tmax) and t > 1]
        if 2 in ts and tmax > 2:
            hdr.append(f"collapse {tmax}/2")
        rows = []
        for i in self.impls(fam):
            r = [i] + [self.ns(fam, i, t) for t in ts]
            if 2 in ts:
                ips = self.get(fam, i, 2, "items_per_second")
                r.append(fmt(ips / 1e6 if ips else None))
            r += [fmt(self.get(fam, i, t, "fair_min_max"), 2) for t in ts if t in (2, tmax) and t > 1]
            if 2 in ts and tmax > 2:
                r.append(fmt(self.ratio(self.get(fam, i, tmax, "ns_op"), self.get(fam, i, 2, "ns_op")), 2))
            rows.append(r)
        self.table(hdr, rows)
        self.line("### Ratios against peers (ns/op, weft / peer)")
        self.line()
        rows = []
        for a, b in LOCK_PAIRS:
            if a in self.impls(fam) and b in self.impls(fam):
                rows.append([f"{a} / {b}"] + [fmt(self.ratio(self.get(fam, a, t, "ns_op"),
                                                               self.get(fam, b, t, "ns_op")), 2) for t in ts])
        self.table(["pair"] + [f"{t} thr" for t in ts], rows)

    def ranking_section(self):
        fam = "lock"
        ts = [t for t in self.threads(fam) if t in (1, 2)]
        if not ts:
            return
        self.line("## The seed's ranking, measured")
        self.line()
        self.line("The seed (Windows): volatile read > volatile write > interlocked > SRW > "
                  "critical section > mutex object. Here, fastest first:")
        self.line()
        for t in ts:
            got = [(self.get(fam, impl, t, "ns_op"), label) for label, impl in RANKING
                   if self.get(fam, impl, t, "ns_op") is not None]
            got.sort()
            self.line(f"- {t} thread(s): " + " > ".join(f"{label} ({fmt(v)} ns)" for v, label in got))
        self.line()

    def rw_section(self):
        fams = sorted(f for f in {f for (f, _i, _t) in self.med} if f.startswith("rw"))
        for fam in fams:
            pct = fam[2:]
            ts = self.threads(fam)
            self.line(f"## Reader/writer, {pct}% reads (`{fam}/*`): ns/op")
            self.line()
            rows = []
            for i in self.impls(fam):
                rows.append([i] + [self.ns(fam, i, t) for t in ts] +
                            [fmt(self.get(fam, i, max(ts), "fair_min_max"), 2)])
            for a, b in RW_PAIRS:
                if a in self.impls(fam) and b in self.impls(fam):
                    rows.append([f"*{a} / {b}*"] + [fmt(self.ratio(self.get(fam, a, t, "ns_op"),
                                                                    self.get(fam, b, t, "ns_op")), 2)
                                                     for t in ts] + [""])
            self.table(["lock"] + [f"{t} thr" for t in ts] + [f"fair @{max(ts)}"], rows)

    def wstarve_section(self):
        fam = "wstarve"
        if not self.impls(fam):
            return
        t = self.threads(fam)[0]
        self.line(f"## Writer starvation (`wstarve/*`): one writer, {t - 1} streaming readers")
        self.line()
        self.line("Writer acquisition latency in microseconds; reads/s is the readers' total "
                  "throughput meanwhile; capped = readers hit the time cap (a writer starved).")
        self.line()
        rows = []
        for i in self.impls(fam):
            g = lambda m: self.get(fam, i, t, m)
            rows.append([i, fmt(g("wr_p50_us")), fmt(g("wr_p99_us")), fmt(g("wr_max_us")),
                         fmt(g("reads_per_s") / 1e6 if g("reads_per_s") else None),
                         "yes" if (g("capped") or 0) >= 0.5 else "no"])
        self.table(["lock", "p50 us", "p99 us", "max us", "M reads/s", "capped"], rows)

    def handoff_section(self):
        fam = "pingpong"
        if not self.impls(fam):
            return
        self.line("## Hand-offs (`pingpong/*`, `idle/*`)")
        self.line()
        self.line("Round trip between two threads; CPU us per round trip is the whole process "
                  "(both threads); cpu/wall 2.0 means both threads busy all the time; 'vs "
                  "pthread_cond' is the speed-up. pinned: the two threads pinned to CPUs 0 and 1 "
                  "(unpinned, the scheduler may run both on one CPU). idle CPU is what a waiter "
                  "burns per 5 ms idle period before its wake-up.")
        self.line()
        ref = self.get(fam, "pthread_cond", 1, "rt_us")
        pref = self.get("pingpong_pinned", "pthread_cond", 1, "rt_us")
        rows = []
        for i in self.impls(fam):
            rt = self.get(fam, i, 1, "rt_us")
            prt = self.get("pingpong_pinned", i, 1, "rt_us")
            rows.append([i, fmt(rt), fmt(self.get(fam, i, 1, "cpu_us_rt")),
                         fmt(self.get(fam, i, 1, "cpu_per_wall"), 2),
                         fmt(self.ratio(ref, rt), 2) if ref else "–",
                         fmt(prt), fmt(self.get("pingpong_pinned", i, 1, "cpu_us_rt")),
                         fmt(self.ratio(pref, prt), 2) if pref else "–",
                         fmt(self.get("idle", i, 1, "cpu_us_idle"))])
        self.table(["impl", "round trip us", "CPU us / rt", "cpu/wall", "vs pthread_cond",
                    "pinned: rt us", "pinned: CPU us / rt", "pinned: vs pthread_cond",
                    "idle CPU us / 5 ms"], rows)

    def goals_section(self):
        g = lambda f, i, t, m="ns_op": self.get(f, i, t, m)
        r = self.ratio
        rows = []

        def add(goal, value, ok):
            rows.append([goal, value, "–" if ok is None else ("met" if ok else "**missed**")])

        def le(v, bound):
            return None if v is None else v <= bound

        cs1 = r(g("lock", "weft_cs", 1), g("lock", "pthread_mutex", 1))
        add("weft_cs uncontended <= 0.8x pthread_mutex", fmt(cs1, 2), le(cs1, 0.8))
        cs2 = r(g("lock", "weft_cs", 2), g("lock", "pthread_mutex", 2))
        add("weft_cs 2 threads <= 0.6x pthread_mutex", fmt(cs2, 2), le(cs2, 0.6))
        cs8 = r(g("lock", "weft_cs", 8), g("lock", "pthread_mutex", 8))
        add("weft_cs 8 threads <= 1.0x pthread_mutex", fmt(cs8, 2), le(cs8, 1.0))
        for t in (1, 2):
            v = r(g("lock", "weft_spin", t), g("lock", "ck_spinlock_fas", t))
            add(f"weft_spin {t} thread(s) <= 1.0x ck_spinlock_fas", fmt(v, 2), le(v, 1.0))
        v = r(g("lock", "weft_spin", 8), g("lock", "weft_spin", 2))
        add("weft_spin 8 threads <= 2x its 2-thread cost", fmt(v, 2), le(v, 2.0))
        for lk in ("weft_ticket", "weft_mcs"):
            f2 = g("lock", lk, 2, "fair_min_max")
            add(f"{lk} fairness at 2 threads >= 0.8", fmt(f2, 2), None if f2 is None else f2 >= 0.8)
            for t in (4, 8):
                v = r(g("lock", lk, t), g("lock", lk, 2))
                add(f"{lk} {t} threads <= 3x its 2-thread cost", fmt(v, 2), le(v, 3.0))
        v = r(g("rw90", "weft_srw", 2), g("rw90", "pthread_rwlock", 2))
        add("weft_srw 90/10 at 2 threads <= 0.2x pthread_rwlock", fmt(v, 2), le(v, 0.2))
        ws = self.threads("wstarve")
        if ws:
            t = ws[0]
            mx = g("wstarve", "weft_srw", t, "wr_max_us")
            add("weft_srw writer max wait under streaming readers <= 2 ms",
                f"{fmt(mx)} us" if mx is not None else "–", le(mx, 2000))
            a, b = g("wstarve", "weft_srw", t, "reads_per_s"), g("wstarve", "pthread_rwlock", t, "reads_per_s")
            add("... with read throughput >= default pthread_rwlock", fmt(r(a, b), 2) + "x",
                None if a is None or b is None else a >= b)
        rt = g("pingpong", "weft_cond", 1, "rt_us")
        add("weft_cond ping-pong <= 1 us round trip", f"{fmt(rt)} us" if rt else "–", le(rt, 1.0))
        ref = g("pingpong", "pthread_cond", 1, "rt_us")
        sp = r(ref, rt)
        add("weft_cond >= 20x faster than pthread_cond", fmt(sp, 1) + "x" if sp else "–",
            None if sp is None else sp >= 20)
        prt = g("pingpong_pinned", "weft_cond", 1, "rt_us")
        psp = r(g("pingpong_pinned", "pthread_cond", 1, "rt_us"), prt)
        if prt is not None:
            add("... the same, threads pinned to two CPUs: round trip <= 1 us",
                f"{fmt(prt)} us", le(prt, 1.0))
            add("... the same, pinned: >= 20x pthread_cond", fmt(psp, 1) + "x" if psp else "–",
                None if psp is None else psp >= 20)
        idle = g("idle", "weft_cond", 1, "cpu_us_idle")
        add("weft_cond idle waiter burns no CPU after a short spin (< 500 us per 5 ms idle)",
            f"{fmt(idle)} us" if idle is not None else "–", le(idle, 500))
        self.line("## Goals of issue 4 (from this run)")
        self.line()
        self.table(["goal", "measured", "verdict"], rows)

    def shim_section(self):
        fam = "shim"
        if not self.impls(fam):
            return
        self.line("## Shim overhead (`shim/*`): ns per iteration, empty body")
        self.line()
        self.line("Wall time, and in brackets thread CPU time (steadier on a busy machine). "
                  "The contention loops call the shim once per 32 operations.")
        self.line()
        rows = []

        def pair(impl):
            return (self.get(fam, impl, 1, "real_ns"), self.get(fam, impl, 1, "cpu_ns"))

        def both(w, c):
            return f"{fmt(w)} ({fmt(c)})"

        for n in ("1", "8", "64"):
            (cw, cc), (nw, nc) = pair(f"c_batch/{n}"), pair(f"native_batch/{n}")
            if None in (cw, cc, nw, nc):
                continue
            rows.append([f"batch {n}", both(cw, cc), both(nw, nc), both(cw - nw, cc - nc)])
        rw, rc = pair("native_range_for")
        if rw is not None:
            rows.append(["C++ `for (auto _ : state)`", "–", both(rw, rc), "–"])
        self.table(["loop", "C via shim", "native C++", "overhead"], rows)

    def other_section(self):
        fams = []
        for (f, _i, _t) in self.med:
            if f not in KNOWN and not f.startswith("rw") and f not in fams:
                fams.append(f)
        if not fams:
            return
        self.line("## Other units' rows")
        self.line()
        self.line("Time per iteration (wall, and CPU in brackets) and every custom counter, "
                  "medians; see each unit's source for what an iteration is.")
        self.line()
        skip = {"real_ns", "cpu_ns", "items_per_second"}
        for fam in fams:
            self.line(f"### `{fam}/*`")
            self.line()
            rows = []
            for i in self.impls(fam):
                for t in self.threads(fam):
                    m = self.med.get((fam, i, t))
                    if not m:
                        continue
                    ctr = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(m.items()) if k not in skip)
                    ips = m.get("items_per_second")
                    rows.append([f"{fam}/{i}" + (f" ({t} thr)" if t > 1 else ""),
                                 f"{fmt(m.get('real_ns'))} ({fmt(m.get('cpu_ns'))})",
                                 fmt(ips / 1e6 if ips else None), ctr])
            self.table(["row", "ns / iteration", "M items/s", "counters"], rows)

    # ---- charts -------------------------------------------------------------------------
    def charts(self, outdir):
        fams = [f for f in ("lock", "rw90", "rw99", "rw100") if self.impls(f)]
        written = []
        for fam in fams:
            ts = self.threads(fam)
            impls = self.impls(fam)
            dat = os.path.join(outdir, f"{fam}.dat")
            with open(dat, "w") as f:
                f.write("threads " + " ".join(impls) + "\n")
                for t in ts:
                    vals = []
                    for i in impls:
                        ns = self.get(fam, i, t, "ns_op")
                        vals.append(f"{1e3 / ns:.4f}" if ns else "?")
                    f.write(f"{t} " + " ".join(vals) + "\n")
            written.append((fam, dat, impls, ts))
        gp = shutil.which("gnuplot")
        if not gp or not written:
            return []
        charts = []
        for fam, dat, impls, ts in written:
            # weft rows solid and thick, peers dashed, the seed's raw rows dotted
            plots = []
            for col, impl in enumerate(impls, start=2):
                if impl.startswith("weft_"):
                    style = "lw 3 dt 1"
                elif impl in ("volatile_read", "volatile_write", "interlocked_inc"):
                    style = "lw 1.5 dt 3"
                else:
                    style = "lw 1.5 dt 2"
                plots.append(f"'{dat}' using 1:{col} with linespoints {style} title '{impl}'")
            title = {"lock": "mutual exclusion", "rw90": "reader/writer, 90% reads",
                     "rw99": "reader/writer, 99% reads", "rw100": "reader/writer, read only"}[fam]
            for term, ext in (("svg size 900,560 dynamic font 'sans,11'", "svg"),
                              ("pngcairo size 900,560 font 'sans,10'", "png")):
                out = os.path.join(outdir, f"{fam}.{ext}")
                script = f"""
set terminal {term}
set output '{out}'
set title 'weft-bench: {title} - throughput (all threads) vs threads'
set xlabel 'threads'
set ylabel 'Mops/s (log scale)'
set logscale y
set xtics ({', '.join(str(t) for t in ts)})
set key outside right top
set grid
set datafile missing '?'
set termoption noenhanced
plot {", ".join(plots)}
"""
                res = subprocess.run([gp], input=script, text=True, capture_output=True)
                if res.returncode == 0 and os.path.exists(out):
                    charts.append(os.path.basename(out))
                elif ext == "png":
                    # no cairo: fall back to the libgd terminal
                    script = script.replace(term, "png size 900,560")
                    res = subprocess.run([gp], input=script, text=True, capture_output=True)
                    if res.returncode == 0:
                        charts.append(os.path.basename(out))
        return charts


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    ctx, med, errors, nreps = load(os.path.join(outdir, "bench.json"))
    machine = ""
    mpath = os.path.join(outdir, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath) as f:
            machine = f.read()
    s = Summary(ctx, med, errors, nreps)
    s.header(machine)
    s.goals_section()
    s.lock_section()
    s.ranking_section()
    s.rw_section()
    s.wstarve_section()
    s.handoff_section()
    s.shim_section()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pool"))
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import summary_pool  # the port and pool families (issues 5, 6): bench/pool/summary_pool.py
    s.out += summary_pool.sections(os.path.join(outdir, "bench.json"))
    s.med = {k: v for k, v in s.med.items() if k[0] not in summary_pool.FAMILIES}
    s.other_section()
    charts = s.charts(outdir)
    if charts:
        s.line("## Charts")
        s.line()
        for c in charts:
            if c.endswith(".svg"):
                s.line(f"![{c}]({c})")
        s.line()
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(s.out) + "\n")
    print("\n".join(s.out))
    if errors:
        print(f"summary.py: {len(errors)} run(s) failed their correctness check (see above)",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
