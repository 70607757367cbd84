"""Turns the raw lines of tests/bench/bench.sh into OUT/bench.md and
OUT/bench.png (gnuplot): medians per side, the edgegate/HAProxy ratio of
each figure, the spread, the proxy's share of its core and the load of the
machine during the runs.

Usage: report.py RESULTS COMMANDS OUT ROUNDS SECONDS MEMORY_ROUNDS ELAPSED
                 [WORKERS_ROUNDS TLS_SECONDS]
RESULTS holds one line per run: FIGURE SIDE ROUND key=value ...
"""
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict

res_path, cmds_path, out, rounds, secs, mrounds, elapsed = sys.argv[1:8]
wrounds, tlsecs = (sys.argv[8:10] + ["?", "?"])[:2] if len(sys.argv) > 8 else ("?", "?")
runs = defaultdict(list)  # (figure, side) -> [ {key: float} ]
for line in open(res_path):
    f = line.split()
    if len(f) < 3:
        continue
    kv = {}
    for item in f[3:]:
        k, _, v = item.partition("=")
        try:
            kv[k] = float(v)
        except ValueError:
            pass
    runs[(f[0], f[1])].append(kv)


def values(fig, side, key):
    return [r[key] for r in runs.get((fig, side), []) if key in r]


def med(fig, side, key):
    v = values(fig, side, key)
    return statistics.median(v) if v else None


def per_req_us(fig, side, key="rps"):
    """Proxy CPU time per request (or per unit of KEY), microseconds: less
    sensitive to the busy machine than the rates themselves."""
    v = [r["cpu"] / r[key] * 1e6 for r in runs.get((fig, side), [])
         if r.get(key) and "cpu" in r]
    return statistics.median(v) if v else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def spread(fig, side, key, digits=0):
    v = values(fig, side, key)
    if len(v) < 2:
        return ""
    return f"{fmt(min(v), digits)}-{fmt(max(v), digits)}"


def ratio(a, b):
    return a / b if a is not None and b else None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip() or subprocess.run(
            cmd, shell=True, capture_output=True, text=True, timeout=10).stderr.strip()
    except Exception:
        return "?"


rows = []      # (figure, unit, edgegate, haproxy, ratio, better, notes)
ratios = []    # (label, ratio) for the plot


def pair(label, fig, key, unit, better, digits=0, note_extra="", plot=None):
    e, h = med(fig, "edgegate", key), med(fig, "haproxy", key)
    r = ratio(e, h)
    notes = []
    se, shp = spread(fig, "edgegate", key, digits), spread(fig, "haproxy", key, digits)
    if se:
        notes.append(f"range {se} vs {shp}")
    ce, ch = med(fig, "edgegate", "cpu"), med(fig, "haproxy", "cpu")
    if ce is not None and key in ("rps", "value"):
        notes.append(f"proxy got {ce:.2f} vs {ch:.2f} of its core")
    se_, sh_ = med(fig, "edgegate", "sleeps"), med(fig, "haproxy", "sleeps")
    if se_ is not None and key == "rps":
        notes.append(f"proxy slept {se_:.1f} vs {sh_:.1f} times per 1,000 requests")
    err = sum(values(fig, "edgegate", "errors")) + sum(values(fig, "haproxy", "errors"))
    if err:
        notes.append(f"{err:.0f} errors")
    if fig == "close" and values(fig, "edgegate", "errors") and statistics.median(
            values(fig, "edgegate", "errors")) > 0:
        notes.append("wrk counts a read error per request through edgegate: edgegate passes "
                     "the response head on unchanged, nginx's `Connection: keep-alive` "
                     "included, although the client asked to close, and then closes; HAProxy "
                     "answers `connection: close`")
    if note_extra:
        notes.append(note_extra)
    rows.append((label, unit, fmt(e, digits), fmt(h, digits),
                 fmt(r, 2) if r else "-", better, "; ".join(notes)))
    if plot and r:
        ratios.append((plot, r))
    return r


pair("keep-alive HTTP requests/s", "keepalive", "rps", "req/s", "higher", plot="keep-alive req/s")
pair("keep-alive HTTP p99", "keepalive", "p99", "ms", "lower", digits=2, plot="keep-alive p99")
e, h = per_req_us("keepalive", "edgegate"), per_req_us("keepalive", "haproxy")
rows.append(("keep-alive HTTP, proxy CPU per request", "us", fmt(e, 1), fmt(h, 1),
             fmt(ratio(e, h), 2), "lower", "CPU time of the proxy / requests: the busy machine "
             "weighs less on it"))
ratios.append(("keep-alive CPU/req", ratio(e, h) or 0))
pair("new-connection HTTP requests/s (Connection: close)", "close", "rps", "req/s", "higher",
     plot="new-conn req/s")
pair("new-connection HTTP p99", "close", "p99", "ms", "lower", digits=2)
e, h = per_req_us("close", "edgegate"), per_req_us("close", "haproxy")
rows.append(("new-connection HTTP, proxy CPU per request", "us", fmt(e, 1), fmt(h, 1),
             fmt(ratio(e, h), 2), "lower", ""))
ratios.append(("new-conn CPU/req", ratio(e, h) or 0))
pair("tcp mode bulk throughput (4 connections into a sink)", "tcp_bulk", "value", "MB/s",
     "higher", plot="tcp MB/s")
pair("tcp mode new connections/s (64 at a time, 5-byte echo)", "tcp_conn", "value", "conn/s",
     "higher", plot="tcp conn/s")
e, h = per_req_us("tcp_bulk", "edgegate", "value"), per_req_us("tcp_bulk", "haproxy", "value")
rows.append(("tcp mode bulk, proxy CPU per MB", "us", fmt(e, 0), fmt(h, 0), fmt(ratio(e, h), 2),
             "lower", ""))
ratios.append(("tcp CPU/MB", ratio(e, h) or 0))
e, h = per_req_us("tcp_conn", "edgegate", "value"), per_req_us("tcp_conn", "haproxy", "value")
rows.append(("tcp mode, proxy CPU per connection", "us", fmt(e, 1), fmt(h, 1),
             fmt(ratio(e, h), 2), "lower", ""))


def kernel_note(fig):
    k = [v for s in ("edgegate", "haproxy") for v in values(fig, s, "tcp_slab_per_conn")]
    t = [v for s in ("edgegate", "haproxy") for v in values(fig, s, "slab_per_conn")]
    if not k:
        return ""
    return (f"kernel: {statistics.median(k):,.0f} B per connection in the socket slabs "
            f"(TCP, sock_inode_cache, filp, dentry, eventpoll_epi) for its two sockets, the "
            f"client's and the proxy's; /proc/meminfo Slab grew {statistics.median(t):,.0f} B "
            f"per connection (machine-wide, noisy)")


pair("memory per idle keep-alive client (2,000, after one request)", "mem_http",
     "rss_per_conn", "bytes", "lower", note_extra=kernel_note("mem_http"), plot="idle KA bytes")
pair("memory per idle TLS client (2,000, after one request)", "mem_tls", "rss_per_conn",
     "bytes", "lower", note_extra=kernel_note("mem_tls"), plot="idle TLS bytes")
curve = []
idle_ns = sorted({int(f[5:]) for f, _ in runs if f.startswith("idle_")})
for n in idle_ns:
    fig = f"idle_{n}"
    if not runs.get((fig, "edgegate")):
        continue
    procs = int(med(fig, "edgegate", "procs") or 1)
    where = "one process" if procs == 1 else f"{procs} processes, {n // procs:,} each"
    pair(f"idle curve: memory per plain client at {n:,} ({where})", fig, "rss_per_conn",
         "bytes", "lower",
         note_extra=kernel_note(fig), plot=f"idle {n // 1000}k bytes" if n == 100000 else None)
    curve.append((n, med(fig, "edgegate", "rss_per_conn"), med(fig, "haproxy", "rss_per_conn"),
                  statistics.median(values(fig, "edgegate", "tcp_slab_per_conn") +
                                    values(fig, "haproxy", "tcp_slab_per_conn"))))
# ---- workers 2 against workers 1 (its own table) ----
wrows = []  # (figure, 1, 2, factor, proxy CPU 1 -> 2, client CPU, machine busy, notes)


def cores(fig, side, key):
    v = med(fig, side, key)
    return f"{v:.2f}" if v is not None else "-"


QUIET = 0.3  # cores: nginx takes ~0.02 at these rates, the rest is someone else's


def scale_row(label, fig, one, two, key, client_key=None, note=""):
    a, b = med(fig, one, key), med(fig, two, key)
    r = ratio(b, a)
    notes = [f"range {spread(fig, one, key) or '-'} vs {spread(fig, two, key) or '-'}"]
    err = sum(values(fig, one, "errors")) + sum(values(fig, two, "errors"))
    notes.append(f"{err:.0f} errors")
    if values(fig, two, "resumed"):
        notes.append(f"{sum(values(fig, one, 'resumed')) + sum(values(fig, two, 'resumed')):.0f}"
                     " resumed handshakes")
    if values(fig, two, "split"):
        notes.append(f"busiest of the 2 took {cores(fig, two, 'split')} of the proxy's CPU")
    # Each round's factor, runs of the same round being next to each other in
    # time, and what other processes took meanwhile: the machine's busy CPU
    # less the proxy's and the load generator's (nginx's share included).
    ra, rb = runs.get((fig, one), []), runs.get((fig, two), [])

    def others(r):
        return r["busy"] - r.get("cpu", 0) - (r.get(client_key, 0) if client_key else 0)

    if len(ra) == len(rb) and len(ra) > 1:
        notes.append("per round (factor, cores the rest of the machine took in its two runs): " +
                     ", ".join(f"{y[key] / x[key]:.2f} ({others(x):.2f}, {others(y):.2f})"
                               if "busy" in x and "busy" in y else f"{y[key] / x[key]:.2f}"
                               for x, y in zip(ra, rb) if x.get(key)))
    if client_key and ra and "busy" in ra[0]:
        # The runs during which nothing else ran (whatever their round): what
        # the proxy does with the machine to itself.
        qa = [x for x in ra if others(x) < QUIET and x.get(key)]
        qb = [y for y in rb if others(y) < QUIET and y.get(key)]

        def q(rs):
            return (f"{statistics.median(r[key] for r in rs):,.0f} at "
                    f"{statistics.median(r['cpu'] for r in rs):.2f} cores ({len(rs)} runs)")

        if qa and qb:
            f = statistics.median(r[key] for r in qb) / statistics.median(r[key] for r in qa)
            notes.append(f"QUIET RUNS (the rest took under {QUIET} cores): {one} {q(qa)}, "
                         f"{two} {q(qb)}: factor {f:.2f}")
        else:
            notes.append(f"quiet runs (the rest under {QUIET} cores): {len(qa)} of {one}, "
                         f"{len(qb)} of {two}: no quiet factor")
    oth = [others(r) for r in ra + rb if "busy" in r]
    if oth:
        notes.append(f"the rest of the machine (nginx, {'wrk, ' if not client_key else ''}"
                     f"other processes) took {statistics.median(oth):.2f} cores (median)")
    pa, pb = per_req_us(fig, one, key), per_req_us(fig, two, key)
    if pa and pb:
        notes.append(f"proxy CPU per {'connection' if key == 'value' else 'request'} "
                     f"{pa:,.0f} vs {pb:,.0f} us")
    if note:
        notes.append(note)
    client = (f"{cores(fig, one, client_key)} / {cores(fig, two, client_key)}"
              if client_key else "-")
    busy = (f"{cores(fig, one, 'busy')} / {cores(fig, two, 'busy')}"
            if values(fig, one, "busy") else "-")
    wrows.append((label, fmt(a), fmt(b), fmt(r, 2) if r else "-",
                  f"{cores(fig, one, 'cpu')} / {cores(fig, two, 'cpu')}", client, busy,
                  "; ".join(notes)))
    return r


r = scale_row("edgegate workers 1 / 2: new TLS connections/s (full RSA-4096 handshakes, one "
              "request each)", "tlsnew", "w1", "w2", "value", "client_cpu")
if r:
    ratios.append(("w2/w1 TLS", r))
scale_row("HAProxy nbthread 1 / 2: the same", "tlsnew", "h1", "h2", "value", "client_cpu")
r = scale_row("edgegate workers 1 / 2: keep-alive HTTP requests/s (LOAD-BOUND, see the ceiling)",
              "workers", "w1", "w2", "rps",
              note="wrk (one thread) and nginx share core 0: this measures them, not edgegate")
if r:
    ratios.append(("w2/w1 KA (wrk-bound)", r))
wd = med("workers", "direct", "rps")
if wd:
    wrows.append(("ceiling of the load side: wrk straight to nginx, both on core 0", fmt(wd),
                  "", "", "", "", "", f"range {spread('workers', 'direct', 'rps') or '-'}; "
                  "no proxy run can beat it: the keep-alive rates above sit at it"))

loads = [r["load"] for k, rs in runs.items() for r in rs if "load" in r]
cpus = {s: [r["cpu"] for (f, side), rs in runs.items() if side == s and f == "keepalive"
            for r in rs if "cpu" in r] for s in ("edgegate", "haproxy")}

meminfo = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
model = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
commit = sh("git rev-parse --short HEAD") + (" (with local changes)" if sh(
    "git status --porcelain --untracked-files=no") else "")
lines = []
w = lines.append
w("# edgegate against HAProxy: `make bench`\n")
w(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; edgegate {commit}")
w(f"- machine: {platform.node()}, {os.cpu_count()} cores ({model}), {meminfo}, "
  f"Linux {platform.release()}")
w(f"- {sh('haproxy -v | head -1')}; {sh('nginx -v 2>&1')}; "
  f"{sh('wrk -v 2>&1 | head -1').split(' Copyright')[0]}")
w(f"- rounds: {rounds} of {secs} s per figure and side (tcp: 2 s), the sides alternating "
  f"(and which goes first); memory: {mrounds} rounds, a fresh process each; idle curve: one "
  f"run per side. Whole run: {elapsed} s.")
if loads:
    w(f"- load average (1 min) before the runs: min {min(loads):.2f}, median "
      f"{statistics.median(loads):.2f}, max {max(loads):.2f} on 2 cores; under keep-alive "
      f"load the proxy pinned on core 1 got a median {statistics.median(cpus['edgegate'] or [0]):.2f}"
      f" (edgegate) and {statistics.median(cpus['haproxy'] or [0]):.2f} (HAProxy) of that core:"
      " other developers' processes took the rest, so rates are noisy, CPU per request less so.")
w("- setup: nginx `return 200` (17-byte body, keep-alive), the proxy under test alone on core 1 "
  "(`taskset -c 1`), nginx, the load generator and the tcp sink/echo servers on core 0. Both "
  "proxies: http mode, keep-alive on both sides, server connections pooled (HAProxy "
  "`http-reuse always`), one worker/thread, X-Forwarded-For and X-Forwarded-Proto added, "
  "timeouts 300 s, at most 9,900 client connections per process (`max_connections`, "
  "`maxconn`), no health checks, no request log, 16 KiB buffers. RLIMIT_NOFILE is 20,000 "
  "for every process: that is the hard limit here and nothing may raise it (no "
  "CAP_SYS_RESOURCE), hence the per-process limit and the idle curve's 12 processes past "
  "9,000 clients.")
w("")
w("| figure | unit | edgegate | HAProxy | edgegate/HAProxy | better | notes |")
w("| --- | --- | ---: | ---: | ---: | --- | --- |")
for r in rows:
    w("| " + " | ".join(r) + " |")
w("")
w("## workers 2 against workers 1 (2 cores)\n")
w(f"edgegate `workers 1` and `workers 2` (HAProxy `nbthread 1` and `2`), not pinned "
  f"(`taskset -c 0-1`), the load generator and nginx on core 0. TLS: {rounds} rounds of "
  f"{tlsecs} s per side, each run `benchtool tlsrate`: 32 connections at a time, each a full "
  "handshake (TLS 1.3, X25519, RSA-4096 certificate; the client has no session cache and asks "
  "for no ticket, and counts resumed handshakes), one request with `Connection: close`, the "
  "whole answer read, then closed; bounded by time and by 100,000 connections. RSA-4096 "
  "rather than the RSA-2048 of the figures above: with OpenSSL 3.0 the client's side of a "
  "handshake costs about 0.5 ms here, nearly what the server's RSA-2048 side costs (about "
  "0.6 ms), so the load generator on core 0 became the ceiling and workers 2 showed nothing "
  "(measured: 1,500-1,800 handshakes/s for both). With RSA-4096 the server's signature is "
  "about 4 ms and the client's share a seventh of the proxy's. "
  f"Keep-alive: {wrounds} rounds of {secs} s (wrk).")
w("")
w("CPU columns in cores (1.00: one whole core) over each run's wall time, medians: the proxy "
  "(master and workers, or all threads), the load generator (benchtool's own rusage), and "
  "the whole machine (from /proc/stat, so other processes on it are included: anything "
  "above proxy + load generator + nginx is someone else's).")
w("")
w("| figure | 1 | 2 | factor 2/1 | proxy CPU 1 / 2 | load generator CPU 1 / 2 | machine busy 1 / 2 "
  "| notes |")
w("| --- | ---: | ---: | ---: | --- | --- | --- | --- |")
for r in wrows:
    w("| " + " | ".join(r) + " |")
w("")
w("Medians over the rounds. Memory: growth of the proxy's VmRSS divided by the number of "
  "connections, each connection having sent one request and read its answer, measured after "
  "256 warm-up connections (opened, used, closed) so that what is set up once (server "
  "connections, buffers, TLS contexts) is not charged to the clients. The kernel's share is "
  "the growth of the socket slab caches over the same connections, for both ends of each "
  "(the client's socket and the proxy's), read from /proc/slabinfo: it is the machine's, not "
  "the proxy's alone.")
w("")
w("## Commands\n")
w("`make bench` runs `tests/bench/bench.sh` (BENCH_QUICK=1: 3 rounds of 3 s). Per figure "
  "(PORT: the proxy's listener, PID: its process):\n")
w("| figure | command |")
w("| --- | --- |")
for line in open(cmds_path):
    name, _, c = line.rstrip("\n").partition("\t")
    w(f"| {name} | `{c}` |")
w("")
w("Proxies: `taskset -c 1 build/edgegate -f -c eg.conf`, `taskset -c 1 haproxy -f ha.cfg "
  "-db -q`; workers: `taskset -c 0-1 build/edgegate ...` (`workers 2` against `workers 1`); "
  "the idle curve's 12 processes: `workers 12`, and 12 `haproxy -f ha-idle.cfg -db -q` on one "
  "port (SO_REUSEPORT). Backend: `taskset -c 0 nginx` (one process, `return 200`).")
w("")
w("![ratios and idle curve](bench.png)")
open(os.path.join(out, "bench.md"), "w").write("\n".join(lines) + "\n")

# ---- the plot ----
dat = os.path.join(os.path.dirname(res_path), "plot")
os.makedirs(dat, exist_ok=True)
with open(os.path.join(dat, "curve.dat"), "w") as f:
    for n, e, h, k in curve:
        f.write(f"{n} {e or 0} {h or 0} {k}\n")
    if not curve:  # a run without the idle phase (BENCH_PHASES): an empty plot
        f.write("1000 0 0 0\n")
with open(os.path.join(dat, "ratios.dat"), "w") as f:
    for label, r in ratios:
        f.write(f"\"{label}\" {r:.3f}\n")
gp = f"""
set terminal pngcairo size 1400,560 font "DejaVu Sans,10"
set output "{os.path.join(out, 'bench.png')}"
set multiplot layout 1,2 title "edgegate vs HAProxy 2.6 ({time.strftime('%Y-%m-%d')}, medians)"
set title "idle plain keep-alive clients: memory per connection (from 10k: 12 processes)"
set logscale x
set xrange [700:140000]
set xlabel "idle client connections"
set ylabel "bytes per connection"
set key at graph 0.98, graph 0.8 right
set yrange [0:*]
set grid
plot "{dat}/curve.dat" using 1:2 with linespoints lw 2 pt 7 title "edgegate (VmRSS)", \\
     "" using 1:3 with linespoints lw 2 pt 5 title "HAProxy (VmRSS)", \\
     "" using 1:4 with linespoints lw 1 dt 2 pt 6 title "kernel socket slabs (both ends)"
unset logscale x
unset xrange
set title "edgegate / HAProxy (throughput: above 1 is better; p99, CPU, bytes: below 1)"
set style data histograms
set style fill solid 0.7
set boxwidth 0.7
set logscale y 2
set yrange [0.125:8]
set ytics ("1/8" 0.125, "1/4" 0.25, "1/2" 0.5, "1" 1, "2" 2, "4" 4, "8" 8)
set xtics rotate by -40
unset xlabel
set ylabel "ratio (log scale)"
unset key
plot "{dat}/ratios.dat" using 2:xtic(1) lc rgb "#3060a0", 1 with lines lc rgb "red" lw 2
unset multiplot
"""
open(os.path.join(dat, "plot.gp"), "w").write(gp)
subprocess.run(["gnuplot", os.path.join(dat, "plot.gp")], check=True)
print("\n".join(lines[:]))
