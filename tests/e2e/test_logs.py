"""Logs: the access log in a file of its own, syslog as a target of the log
and of the access log (datagrams that never block the gateway), reopening on
SIGUSR1 and changing targets on reload."""

import json
import os
import re
import signal
import socket
import subprocess
import time

from conftest import EG_BIN, RawHTTP, free_port, http_get, stats, wait_until


class SyslogSocket:
    """A syslog daemon's socket: datagrams bound at PATH, read on demand."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.lines = []

    def read(self, timeout=0.05):
        self.s.settimeout(timeout)
        try:
            while True:
                self.lines.append(self.s.recv(65536).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.lines

    def wait_for(self, text, timeout=5.0):
        return wait_until(lambda: [l for l in self.read() if text in l], timeout=timeout,
                          what=f"{text!r} in syslog")

    def close(self):
        self.s.close()


def conf_for(sim, port, sp, head):
    return (f"{head}\nstats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ server {sim.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; session header X-S; }}\n")


def test_access_log_in_a_file_of_its_own(env):
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    logf, accf = env.path("edgegate.log"), env.path("access.log")
    env.gateway(conf_for(sim, port, sp, f"log {logf} info;\naccess_log on {accf};"), wait=[port])
    http_get(port, "/own-file", {"X-S": "k1"})
    wait_until(lambda: "/own-file" in open(accf).read(), what="access line")
    line = [l for l in open(accf) if "/own-file" in l][0]
    assert line.startswith("time=") and "path=/own-file" in line and "session=k1" in line
    # The log has the gateway's messages and no access line.
    wait_until(lambda: "started" in open(logf).read(), what="start message")
    assert "/own-file" not in open(logf).read()
    assert all(l.startswith("time=") for l in open(accf))


def test_access_log_json_file_is_reopened_on_sigusr1(env):
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    accf = env.path("access.json")
    gw = env.gateway(conf_for(sim, port, sp, f"access_log json {accf};"), wait=[port])
    http_get(port, "/before")
    wait_until(lambda: "/before" in open(accf).read(), what="first line")
    rec = json.loads([l for l in open(accf) if "/before" in l][0])
    assert rec["path"] == "/before" and rec["status"] == 200 and rec["dc"] == "ams"
    os.rename(accf, accf + ".1")  # logrotate
    gw.send(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(accf), what="access log reopened")
    http_get(port, "/after")
    wait_until(lambda: "/after" in open(accf).read(), what="line in the new file")
    assert "/after" not in open(accf + ".1").read()
    gw.wait_output("log files reopened")


def test_log_and_access_log_to_syslog_rfc3164(env):
    sl = SyslogSocket(env.path("log.sock"))
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    gw = env.gateway(conf_for(sim, port, sp, "log syslog local3 info;\naccess_log on syslog local4;"
                              f"\nsyslog socket {sl.path};"), wait=[port])
    started = sl.wait_for("started")[0]
    # <PRI>Mmm dd hh:mm:ss edgegate[PID]: MSG, local3.info = 19 * 8 + 6
    assert re.match(rf"<158>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d edgegate\[{gw.pid}\]: "
                    r"edgegate 0\.1\.0 started", started), started
    http_get(port, "/via-syslog")
    access = sl.wait_for("/via-syslog")[0]
    assert access.startswith("<166>")  # local4.info
    assert "path=/via-syslog" in access and "status=200" in access and "\n" not in access
    # Warnings keep their severity: local3.warning = 19 * 8 + 4.
    sim.stop(signal.SIGKILL)
    # The request finds nothing listening and is held (hold_timeout): its
    # answer is not waited for, only the warning it causes.
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"GET /down HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sl.wait_for("is down")[0].startswith("<156>")
    # Nothing of it reached standard error.
    assert "started" not in gw.output()


def test_syslog_rfc5424(env):
    sl = SyslogSocket(env.path("log.sock"))
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    gw = env.gateway(conf_for(sim, port, sp, "log syslog info;\naccess_log json syslog;"
                              f"\nsyslog socket {sl.path} format rfc5424;"), wait=[port])
    http_get(port, "/five")
    line = sl.wait_for("/five")[0]
    m = re.match(r"<30>1 (\S+) (\S+) edgegate (\d+) access - (\{.*\})$", line)
    assert m, line  # daemon.info = 3 * 8 + 6
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", m.group(1))
    assert m.group(2) == socket.gethostname() and int(m.group(3)) == gw.pid
    assert json.loads(m.group(4))["path"] == "/five"
    assert sl.wait_for("started")[0].startswith("<30>1 ")


def test_a_stalled_syslog_never_blocks_traffic(env):
    """The syslog daemon stops reading: its socket's queue fills, lines wait
    in the gateway's buffer, then are dropped and counted; requests go on
    as fast. Once it reads again, lines flow and one says how many were
    lost."""
    sl = SyslogSocket(env.path("log.sock"))
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf_for(sim, port, sp, f"access_log on syslog;\nsyslog socket {sl.path};"),
                wait=[port])
    path = "/" + "x" * 2000
    c = RawHTTP(port, timeout=3)
    served, t0 = 0, time.time()
    while stats(sp)["counters"]["log_lines_dropped_total"] == 0:
        for _ in range(50):
            assert c.request(path)[0] == 200
        served += 50
        assert served < 5000, "no line dropped: is the socket being read?"
    for _ in range(200):
        assert c.request(path)[0] == 200
    took = time.time() - t0
    assert took < 20, f"{served + 200} requests took {took:.1f}s"
    dropped = stats(sp)["counters"]["log_lines_dropped_total"]
    assert dropped > 0
    # The reader is back: what was buffered arrives, then the notice.
    notice = sl.wait_for("log lines dropped (log sink too slow)")[0]
    assert notice.startswith("<28>")  # daemon.warning
    assert len([l for l in sl.lines if "GET" in l]) > 50
    c.request("/after-the-stall")
    sl.wait_for("/after-the-stall")


def test_syslog_daemon_restart_is_followed(env):
    sl = SyslogSocket(env.path("log.sock"))
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf_for(sim, port, sp, f"access_log on syslog;\nsyslog socket {sl.path};"),
                wait=[port])
    http_get(port, "/one")
    sl.wait_for("/one")
    # The daemon restarts: a new socket at the same path.
    sl.close()
    os.unlink(sl.path)
    http_get(port, "/lost")  # nobody listens: dropped, counted
    wait_until(lambda: stats(sp)["counters"]["log_lines_dropped_total"] >= 1, what="drop counted")
    sl2 = SyslogSocket(sl.path)
    time.sleep(1.1)  # reconnects are at most one a second
    wait_until(lambda: http_get(port, "/two")[0] == 200 and sl2.read() and
               [l for l in sl2.lines if "/two" in l], what="lines to the new socket")


def test_missing_syslog_socket_is_an_error_at_start(env):
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    conf = env.write("e.conf", conf_for(sim, port, sp, "log syslog info;\n"
                                        f"syslog socket {env.path('nobody.sock')};"))
    r = subprocess.run([EG_BIN, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert re.search(r"e\.conf:1: \"log\": syslog: cannot connect to .*nobody\.sock", r.stderr)
    r = subprocess.run([EG_BIN, "-f", "-c", conf], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "cannot connect" in r.stderr


def test_reload_moves_the_access_log_or_keeps_it(env):
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    a, b = env.path("a.log"), env.path("b.log")
    gw = env.gateway(conf_for(sim, port, sp, f"access_log on {a};"), wait=[port])
    http_get(port, "/to-a")
    wait_until(lambda: "/to-a" in open(a).read(), what="line in a")
    with open(gw.conf, "w") as f:
        f.write(conf_for(sim, port, sp, f"access_log json {b};"))
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["generation"] == 2, what="reload")
    http_get(port, "/to-b")
    wait_until(lambda: "/to-b" in open(b).read(), what="line in b")
    assert json.loads(open(b).read().splitlines()[-1])["path"] == "/to-b"
    assert "/to-b" not in open(a).read()
    # A target that cannot be opened fails the whole reload.
    with open(gw.conf, "w") as f:
        f.write(conf_for(sim, port, sp, "access_log on /nonexistent-dir/x.log;")
                .replace(sim.addr, "127.0.0.1:1"))
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["counters"]["reload_failures_total"] == 1, what="failure")
    gw.wait_output("\"access_log\": cannot open /nonexistent-dir/x.log")
    assert stats(sp)["generation"] == 2
    http_get(port, "/still-b")
    wait_until(lambda: "/still-b" in open(b).read(), what="still in b")
