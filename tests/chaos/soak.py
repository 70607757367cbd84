#!/usr/bin/python3
"""Soak: mixed load with faults for a long while, watching what the gateway holds.

    soak.py [--seconds 600] [--interval 30]

edgegate (EG_BIN, default build/edgegate) in front of the chaos suite's
loopback site, under the chaos load (h2load GETs, large responses and
idempotent POSTs, a session probe cycling through 1,000 session keys, the tcp
integrity checker). Every INTERVAL seconds is one round: load, one fault of
the rotation below, then a sample of the gateway's RSS, open descriptors
(/proc/PID/fd) and buffers_in_use (/stats), printed as it goes.

Fails (exit 1) if any of the three grows after the first minute beyond
noise: the smallest of the last three samples above the largest sample of
the second minute by more than the tolerance (RSS 4 MB + 10 %, 10
descriptors, 16 buffers); also on bytes lost or altered, a crash or a
sanitizer report. Needs at least 3 minutes for a verdict.
"""

import argparse
import os
import signal
import sys
import time

from gateways import Edgegate, Host, Site
from harness import ROOT, Env, sanitizer_reports
from phases import (Ctx, act_bad_inputs, act_dc_blackhole, act_dc_flap, act_kill, act_none,
                    act_redis_kill, act_redis_stop, act_reloads, run_phase)

ROTATION = [("dc-kill", act_kill(["ams"])), ("reloads", act_reloads), ("dc-flap", act_dc_flap),
            ("redis-kill", act_redis_kill), ("bad-inputs", act_bad_inputs),
            ("dc-blackhole", act_dc_blackhole), ("redis-stop", act_redis_stop),
            ("none", act_none)]
TOLERANCE = {"rss_kb": lambda base: 4096 + base // 10, "fds": lambda base: 10,
             "buffers": lambda base: 16}


def verdict(samples):
    """[problem] from SAMPLES [(seconds, {metric: value})]; None when too short."""
    base = [s for t, s in samples if 60 <= t < 120]
    tail = [s for t, s in samples if t >= 120][-3:]
    if not base or len(tail) < 3:
        return None
    out = []
    for m, tol in TOLERANCE.items():
        b, last = max(s[m] for s in base), min(s[m] for s in tail)
        if last > b + tol(b):
            out.append(f"{m} grew from {b} (second minute, highest) to {last} "
                       f"(last three samples, lowest); tolerance {tol(b)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--interval", type=int, default=30)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda s, _: sys.exit(128 + s))
    work = os.path.join(ROOT, "build", "chaos", "soak")
    os.makedirs(work, exist_ok=True)
    env = Env(work)
    for f in os.listdir(work):
        os.unlink(os.path.join(work, f))
    t0 = time.time()
    problems, samples, totals = [], [], dict.fromkeys(("started", "failed", "unanswered"), 0)
    try:
        site = Site.loopback()
        site.start(env)
        gw = Edgegate(env, site, Host(), "edgegate")
        gw.start()
        ctx = Ctx(env, site, gw)
        ctx.start_watchers(probe_keys=1000, seconds=args.seconds + 120)
        print(f"{'time':>6} {'fault':<13} {'RSS':>9} {'fds':>5} {'buffers':>8} "
              f"{'requests':>9} {'failed':>7} {'unanswered':>10} {'tcp sent':>9} {'tcp lost':>9}",
              flush=True)
        i = 0
        while time.time() - t0 < args.seconds - 1:
            name, action = ROTATION[i % len(ROTATION)]
            i += 1
            r = run_phase(ctx, name, max(10, args.interval - 2), action)[0]
            if not gw.alive():
                problems.append(f"edgegate died during {name}")
                break
            rss, fds, bufs = gw.memory()
            t = time.time() - t0
            samples.append((t, {"rss_kb": rss, "fds": fds, "buffers": bufs}))
            for k in totals:
                totals[k] += r[k]
            tcp = r["tcp"]
            bad = tcp.get("altered", 0) + tcp.get("lost", 0)
            if bad:
                problems.append(f"{name}: {bad} tcp messages altered or lost: {r['tcp_events']}")
            print(f"{t:5.0f}s {name:<13} {rss / 1024:7.1f}MB {fds:5} {bufs:8} {r['started']:9} "
                  f"{r['failed']:7} {r['unanswered']:10} {tcp.get('sent', 0):9} {bad:9}",
                  flush=True)
        final = ctx.stop_watchers()
        if final and (final["altered"] or final["lost"]):
            problems.append(f"tcp checker final counters: {final}")
        rc = gw.stop()
        if rc != 0:
            problems.append(f"edgegate exited with {rc} on SIGTERM")
    finally:
        env.teardown()
    problems += [f"sanitizer report in {n}" for n in sanitizer_reports(env)]
    v = verdict(samples)
    print(f"\n{time.time() - t0:.0f} s: {totals['started']} requests, {totals['failed']} failed, "
          f"{totals['unanswered']} unanswered (reported, not judged)")
    if v is None:
        print("too short for a verdict on growth (needs samples in the second minute and "
              "three after it)")
    else:
        problems += v
        if not v:
            print("no growth after the first minute beyond noise (RSS, descriptors, buffers)")
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
