"""docs/reliability.md from the chaos suite's results, and the checks that
make it fail."""

import datetime
import os
import platform
import sys

import badinputs

NAMES = {"edgegate": "edgegate", "haproxy": "HAProxy 2.6"}


def rows(runs, net):
    out = [r for run in runs.values() for r in run["results"]]
    if net and net.get("ran"):
        out += net["results"]
    return out


def survived(r):
    tcp = r.get("tcp", {})
    return not (r["failed"] or r["unanswered"] or tcp.get("altered") or tcp.get("lost"))


def secs(v):
    return "–" if v is None else f"{v:.2f}"


def mb(n):
    return f"{n / 1e6:,.1f} MB"


def summary(runs, net, kinds):
    out = ["| | " + " | ".join(NAMES[k] for k in kinds) + " |",
           "|---|" + "---|" * len(kinds)]
    every = rows(runs, net)

    def cells(fn):
        return " | ".join(fn(k, [r for r in every if r["gateway"] == k]) for k in kinds)

    def load(k, rs):
        started = sum(r["started"] for r in rs)
        bad = sum(r["failed"] + r["unanswered"] for r in rs)
        secs_ = sum(r["times"]["end"] - r["times"]["start"] for r in rs)
        done = sum(r["h2load"]["done"] for r in rs)
        return (f"{started:,} requests over {secs_:.0f} s of faults, {bad} failed or "
                f"unanswered ({100 * (started - bad) / max(1, started):.3f} % answered); "
                f"{done / max(1, secs_):,.0f} requests/s")

    faults_of = {k: {r["fault"] for r in every if r["gateway"] == k
                     and r["fault"] not in ("baseline", "bad-inputs")} for k in kinds}
    common = set.intersection(*faults_of.values()) if faults_of else set()

    def faults(k, rs, among):
        fs = [r for r in rs if r["fault"] in among]
        ok = [r["fault"] for r in fs if survived(r)]
        return f"{len(ok)} of {len(fs)}" + (f" ({', '.join(ok)})" if ok else "") if fs else "–"

    def bad(k, rs):
        res = [x for r in rs if r.get("bad") for x in r["bad"]]
        passed = sum(1 for _, v in res if badinputs.passed_on(v))
        return f"{len(res)} tried: {len(res) - passed} refused, {passed} passed on"

    def lost(k, rs):
        tcp = [r.get("tcp", {}) for r in rs]
        sent = sum(t.get("bytes_sent", 0) for t in tcp)
        n = sum(t.get("bytes_lost", 0) + t.get("bytes_altered", 0) for t in tcp)
        msgs = sum(t.get("altered", 0) + t.get("lost", 0) for t in tcp)
        return f"{n:,} bytes ({msgs} messages) of {mb(sent)} sent"

    def crashes(k, rs):
        run = runs.get(k, {})
        c = run.get("crashes", []) + [c for r in rs for c in r.get("crashes", [])]
        s = run.get("sanitizer", [])
        return ("; ".join(c + [f"sanitizer report in {n}" for n in s])) or "none"

    out.append("| load held | " + cells(load) + " |")
    out.append("| faults survived (no request failed or unanswered, no byte lost), of those "
               "both ran | " + cells(lambda k, rs: faults(k, rs, common)) + " |")
    if len(kinds) > 1:
        out.append("| faults survived, of those only edgegate ran | " +
                   cells(lambda k, rs: faults(k, rs, faults_of["edgegate"] - common)) + " |")
    out.append("| bad inputs tried | " + cells(bad) + " |")
    out.append("| bytes lost or altered (tcp mode) | " + cells(lost) + " |")
    out.append("| crashes, sanitizer reports | " + cells(crashes) + " |")
    return out


def per_fault(runs, net, kinds):
    out = ["| fault | gateway | requests started | failed | unanswered | tcp messages "
           "unanswered | bytes lost / altered | marked down after (s) | last caught request "
           "answered after (s) | recovered after (s) | worst request (s) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    every = rows(runs, net)
    order = []
    for r in every:
        if r["fault"] not in order:
            order.append(r["fault"])
    for f in order:
        for k in kinds:
            for r in [r for r in every if r["fault"] == f and r["gateway"] == k]:
                tcp = r.get("tcp", {})
                caught = (f"{secs(r.get('last_answer'))} ({r.get('caught', 0)} caught)"
                          if r.get("caught") is not None else "–")
                out.append(
                    f"| {f} | {NAMES[k]} | {r['started']:,} | {r['failed']} | {r['unanswered']} "
                    f"| {tcp.get('unanswered', 0)} of {tcp.get('sent', 0)} "
                    f"| {tcp.get('bytes_lost', 0)} / {tcp.get('bytes_altered', 0)} "
                    f"| {secs(r.get('markdown'))} | {caught} | {secs(r.get('recover'))} "
                    f"| {secs(r.get('worst'))} |")
            if not any(r["fault"] == f and r["gateway"] == k for r in every):
                out.append(f"| {f} | {NAMES[k]} | not run (see below) | | | | | | | | |")
    return out


def kinds_of(failures):
    """' (502 ×3, ConnectionResetError ×1)' from {what: count}, or ''."""
    return f" ({', '.join(f'{k} ×{n}' for k, n in failures.items())})" if failures else ""


def findings(runs, net, kinds):
    """Every fault a gateway did not come through whole, with the detail."""
    out = []
    for r in rows(runs, net):
        if r["fault"] == "baseline" or survived(r):
            continue
        h, p = r["h2load"], r["probe"]
        out.append(f"- {r['fault']}, {NAMES[r['gateway']]}: {r['failed']} failed and "
                   f"{r['unanswered']} unanswered of {r['started']:,} (h2load: "
                   f"{h['failed']} failed ({h['5xx']} 5xx, {h['4xx']} 4xx), {h['errored']} errored, {h['unanswered']} cut or still "
                   f"waiting, {h['clients_stalled']} of 6 clients stopped; probe: {p['failed']} "
                   f"failed{kinds_of(p.get('failures'))}, {p['unanswered']} unanswered, {p.get('sent_again', 0)} sent again "
                   "after a kept-alive connection closed)")
    for k in kinds:
        bh = [r for r in rows(runs, net) if r["gateway"] == k and r["fault"] in
              ("dc-blackhole", "link-cut-dc") and r.get("last_answer") is not None]
        for r in bh:
            out.append(f"- {r['fault']}, {NAMES[k]}: the last of the {r['caught']} requests the "
                       f"fault caught was answered {r['last_answer']:.2f} s after it; the "
                       f"datacenter was marked down after {secs(r.get('markdown'))} s "
                       "(response timeout 5 s).")
    return out or ["- none"]


def faults_list(runs, net):
    seen, out = set(), []
    for r in rows(runs, net):
        if r["fault"] not in seen:
            seen.add(r["fault"])
            out.append(f"- **{r['fault']}**: {r['what']}")
    return out


def bad_table(runs, kinds):
    res = {k: dict(r["bad"]) for k in kinds for r in runs.get(k, {}).get("results", [])
           if r.get("bad")}
    if not res:
        return []
    ks = [k for k in kinds if k in res]
    out = ["| input | " + " | ".join(NAMES[k] for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name, _ in badinputs.CASES:
        out.append(f"| {name} | " + " | ".join(res[k].get(name, "–") for k in ks) + " |")
    return out


def netns_section(net):
    if not net:
        return ["Not run (`--no-netns`)."]
    if not net.get("ran"):
        return [f"Skipped: {net.get('skipped')}."]
    out = list(net.get("topology", []))
    ag = net.get("agreement")
    if ag:
        out += ["", "Sessions the two gateways agree on (same datacenter answered through "
                "both; " + f"{ag['keys']} keys per set):", "",
                "| set of session keys | agree |", "|---|---:|"]
        for label, (same, total) in ag["sets"]:
            out.append(f"| {label} | {same} of {total} |")
        c = ag.get("converged")
        out += ["", (f"The two gateways agreed again on every session made during the cut "
                     f"{c:.1f} s after gw1 had Redis back." if c is not None else
                     "The two gateways did not agree again on every session made during the "
                     "cut within 20 s of gw1 having Redis back (or gw1 never got it back: see "
                     "the table above).")]
    return out


def one_line(r):
    tcp = r["tcp"]
    return (f"started {r['started']} failed {r['failed']} unanswered {r['unanswered']} | "
            f"tcp sent {tcp.get('sent', 0)} unanswered {tcp.get('unanswered', 0)} "
            f"altered {tcp.get('altered', 0)} lost {tcp.get('lost', 0)} | "
            f"down {secs(r.get('markdown'))} last answer {secs(r.get('last_answer'))} "
            f"recover {secs(r.get('recover'))} worst {secs(r.get('worst'))}")


def notes(runs, net):
    n = [f"- {r['fault']}, {NAMES[r['gateway']]}: {x}" for r in rows(runs, net)
         for x in r["times"].get("notes", [])]
    return ["Notes:", "", *n, ""] if n else []


def render(runs, net, args, elapsed):
    kinds = [k for k in ("edgegate", "haproxy") if k in runs]
    cmd = "make chaos-short" if args.short else "make chaos"
    load = os.getloadavg()
    lines = [
        "# Reliability under faults: edgegate next to HAProxy",
        "",
        f"Produced by `{cmd}` (`tests/chaos/chaos.py`) on "
        f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{os.cpu_count()} cores ({platform.machine()}), load average {load[0]:.2f} at the "
        f"end, in {elapsed:.0f} s. Edgegate binary: "
        f"`{os.path.relpath(os.environ.get('EG_BIN') or 'build/edgegate')}`. "
        "Do not edit: run the suite again.",
        "",
        "## Summary",
        "",
        *summary(runs, net, kinds),
        "",
        "## Findings",
        "",
        *findings(runs, net, kinds),
        "",
        "## Per fault",
        "",
        "Both gateways get the same site and the same schedule: three datacenters "
        "(`ams` priority 1 with a 5 ms answer delay, `fra` 2 with 10 ms, `lon` 3 with 20 ms; "
        "each an http dcsim and an echo dcsim), checks every 100 ms (timeout 300 ms, "
        "rise 2, fall 2), `retries 2`, connect timeout 1 s, response timeout 5 s (edgegate "
        "`response_timeout 5s`, HAProxy `timeout server 5s` with `retry-on "
        "all-retryable-errors` and `option redispatch`), `http-reuse always`; HAProxy's "
        "servers also have `observe layer4 error-limit 1 on-error mark-down`, its way of "
        "marking a refusing server down at once as edgegate does (without it, its retries "
        "went back to the dead server and the caught requests were lost).",
        "",
        *faults_list(runs, net),
        "",
        *per_fault(runs, net, kinds),
        "",
        "How to read it:",
        "",
        "- *requests started*: by six h2load clients (one process each, `--h1 -c1`: four "
        "GET `/`, one GET `/bytes/32768`, one POST with `Idempotency-Key`) and a session "
        "probe (a new session key per request, 20 a second; like browsers, it sends a GET "
        "again once when a kept-alive connection was closed before any answer).",
        "- *failed*: answered with an error status or cut by an error h2load counted. "
        "*unanswered*: the client never got an answer: its connection was closed under "
        "the request, or the request was still waiting more than 3 s when the load "
        "window ended (h2load leaves such a request out of `done` and stops that client).",
        "- *tcp messages unanswered*: the tcp checker's messages (numbered, checksummed, "
        "1 B to 64 KiB, echoed by dcsim) whose echo did not come back whole because the "
        "connection ended or stayed silent for 20 s; the checker reconnects. *bytes lost "
        "/ altered* are bytes that came back wrong or with a gap: always a bug.",
        "- *marked down* and *recovered*: from the gateway's own view (edgegate `/stats`, "
        "HAProxy's CSV stats), polled every 25 ms, from the fault and from its lift. "
        "For Redis faults: Redis seen disconnected, connected again. For the worker kill: "
        "a new worker running.",
        "- *last caught request answered after*: among the requests in flight at some "
        "moment between the fault and the gateway marking it down (at the fault itself "
        "where nothing is marked down), the time from the fault until the last of them was "
        "answered (unanswered ones are counted apart). *worst request*: the longest request "
        "started between a second before the fault and its lift.",
        "",
        *notes(runs, net),
        "## Network namespaces: links cut for real",
        "",
        *netns_section(net),
        "",
        "## Bad inputs",
        "",
        "Sent during load, one connection each; the answer's status code, `closed` (closed "
        "without an answer) or `silent` (nothing within 3 s). A 2xx means it was passed "
        "on to a datacenter, which is not wrong for every case: RFC 9112 lets a proxy "
        "forward a message with both Content-Length and Transfer-Encoding once it drops "
        "Content-Length, and HAProxy knows no session key.",
        "",
        *bad_table(runs, kinds),
        "",
        "## Not comparable",
        "",
        "- Redis faults and session agreement: HAProxy keeps no affinity store, so they "
        "are run against edgegate only.",
        "- Worker kill: edgegate's master replaces a worker that dies (`workers 2`); HAProxy "
        "runs one worker process with threads, and its master does not start a new one "
        "when it dies, so the fault is not run against it.",
        "- Reloads: edgegate re-reads its configuration in place (SIGHUP); HAProxy's master "
        "starts a new worker and the old one finishes its connections (SIGUSR2).",
        "- Routing: edgegate picks the nearest healthy datacenter by priority then measured "
        "RTT and keeps sessions where they are (`failback on` here); HAProxy's `backup` "
        "servers give the same order by priority alone.",
        "",
    ]
    return "\n".join(lines)


def integrity_problems(runs, net):
    """What fails the suite whatever the fault: edgegate losing or altering a
    byte, crashing, or a sanitizer report."""
    out = []
    for r in rows(runs, net):
        if r["gateway"] != "edgegate":
            continue
        for what, tcp in (("", r.get("tcp", {})), (" (checker's final count)", r.get("tcp_final"))):
            if tcp and (tcp.get("altered") or tcp.get("lost")):
                bad = [e for e in r.get("tcp_events", []) if e["kind"] in ("altered", "lost")]
                out.append(f"{r['fault']}{what}: tcp messages altered {tcp.get('altered')} "
                           f"lost {tcp.get('lost')}: {bad}")
        out += [f"{r['fault']}: {c}" for c in r.get("crashes", [])]
    run = runs.get("edgegate", {})
    out += run.get("crashes", [])
    final = run.get("tcp_final") or {}
    if final.get("altered") or final.get("lost"):
        out.append(f"tcp checker final counters: {final}")
    out += [f"sanitizer report in {n}" for n in run.get("sanitizer", [])]
    if net:
        out += [f"netns: sanitizer report in {n}" for n in net.get("sanitizer", [])]
        out += [f"netns: {c}" for c in net.get("crashes", [])]
    return out


def regressions(runs, net, must_hold):
    """Faults edgegate already handles: a failed or unanswered request in one is a regression."""
    return [f"{r['fault']}: {r['failed']} failed, {r['unanswered']} unanswered requests "
            f"(h2load {r['h2load']}, probe {r['probe']})"
            for r in rows(runs, net)
            if r["gateway"] == "edgegate" and r["fault"] in must_hold
            and (r["failed"] or r["unanswered"])]


if __name__ == "__main__":
    sys.exit("report.py is used by chaos.py")
