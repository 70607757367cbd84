#!/usr/bin/python3
"""How fast an operator change reaches the rest of a fleet: two gateways
share one Redis; CHANGES times, datacenter ams is drained then made ready
through gateway 0's control API. For each change, prints the delay until
gateway 1 applied it (the time it recorded the change, minus the time
gateway 0 made it; one clock, one machine), and until a client polling
gateway 1's control API saw it.

Usage: tests/bench/fleet_propagation.py [CHANGES]"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(sp, method="GET", path="/control", body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{sp}{path}", method=method,
                                 data=json.dumps(body).encode() if body else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def wait_port(p):
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing listens on {p}")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    d = tempfile.mkdtemp()
    procs = []
    try:
        rp, dp = port(), port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rp), "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen([f"{ROOT}/build/dcsim", "--name", "ams", "--listen",
                                       f"127.0.0.1:{dp}"], stdout=subprocess.DEVNULL))
        wait_port(rp)
        sps = []
        for i in range(2):
            sp, lp = port(), port()
            conf = os.path.join(d, f"g{i}.conf")
            with open(conf, "w") as f:
                f.write(f"log warn;\nstats 127.0.0.1:{sp};\nredis 127.0.0.1:{rp} {{ prefix b:; }}\n"
                        f"datacenter ams {{ server 127.0.0.1:{dp}; }}\n"
                        f"datacenter fra {{ server 127.0.0.1:{dp}; }}\n"
                        f"listener web {{ listen 127.0.0.1:{lp}; }}\n")
            procs.append(subprocess.Popen([f"{ROOT}/build/edgegate", "-f", "-c", conf]))
            sps.append(sp)
        for sp in sps:
            wait_port(sp)
            while not call(sp)["fleet"]["connected"]:
                time.sleep(0.01)
        applied, observed = [], []
        for k in range(n):
            state = "drain" if k % 2 == 0 else "ready"
            t0 = time.time()
            call(sps[0], "PUT", "/control/dcs/ams", {"state": state})
            while call(sps[1], path="/control/dcs/ams")["state"] != state:
                pass
            observed.append(time.time() - t0)
            made = call(sps[0])["changes"][0]
            ch = call(sps[1])["changes"][0]
            assert ch["origin"] == "redis" and ch["what"] == made["what"], (ch, made)
            applied.append(ch["at"] - made["at"])
            time.sleep(0.02)
        for name, v in (("applied by gateway 1", applied), ("seen polling gateway 1", observed)):
            v = sorted(x * 1000 for x in v)
            print(f"{name}: median {statistics.median(v):.2f} ms, "
                  f"p99 {v[int(len(v) * 0.99) - 1]:.2f} ms, max {v[-1]:.2f} ms over {n} changes")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
