"""Command line, -t, exit codes and signals of the real binary."""

import os
import signal
import subprocess

from conftest import EG_BIN, free_port, wait_port


def run(*args, timeout=10):
    return subprocess.run([EG_BIN, *args], capture_output=True, text=True, timeout=timeout)


GOOD = """
datacenter ams { priority 1; server 127.0.0.1:9001; check http /health interval 1s; }
datacenter fra { priority 2; server 127.0.0.1:9002 weight 2; }
listener web { listen 127.0.0.1:{port}; mode http; session cookie sid; datacenters ams fra; }
"""


def test_version_and_help():
    r = run("-v")
    assert r.returncode == 0 and r.stdout.startswith("edgegate 0.1.0")
    r = run("-h")
    assert r.returncode == 0 and "-c FILE" in r.stdout


def test_bad_option_exits_1():
    r = run("-x")
    assert r.returncode == 1
    assert "usage" in r.stderr


def test_check_good_file(env):
    path = env.write("good.conf", GOOD.replace("{port}", "8080"))
    r = run("-t", "-c", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "configuration ok"


def test_check_reports_every_error_with_file_and_line(env):
    bad = (
        "datacenter ams {\n"             # 1
        "    priority high;\n"           # 2 bad integer
        "    server 127.0.0.1:9001;\n"   # 3
        "    bogus 1;\n"                 # 4 unknown directive
        "}\n"                            # 5
        "listener web {\n"               # 6
        "    listen 127.0.0.1:8080;\n"   # 7
        "    connect_timeout soon;\n"    # 8 bad duration
        "    datacenters ams nowhere;\n"  # 9 unknown datacenter
        "}\n"
    )
    path = env.write("bad.conf", bad)
    r = run("-t", "-c", path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert any(l.startswith(f"{path}:2:") and "priority" in l for l in lines), lines
    assert any(l.startswith(f"{path}:4:") and "bogus" in l for l in lines), lines
    assert any(l.startswith(f"{path}:8:") and "connect_timeout" in l for l in lines), lines
    # Cross references are checked once the syntax is clean; the three above
    # come first, all of them, in one run.
    assert len(lines) >= 3


def test_unknown_datacenter_is_an_error(env):
    path = env.write("bad.conf", "datacenter ams { server 127.0.0.1:9001; }\n"
                     "listener web {\n listen 127.0.0.1:8080;\n datacenters ams nowhere;\n}\n")
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert f"{path}:4:" in r.stderr and "nowhere" in r.stderr


def test_missing_file_exits_1(env):
    r = run("-t", "-c", env.path("absent.conf"))
    assert r.returncode == 1
    assert "absent.conf" in r.stderr


def test_garbage_file_is_rejected_not_crashing(env):
    path = env.path("garbage.conf")
    with open(path, "wb") as f:
        f.write(bytes(range(256)) * 4)
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert path in r.stderr


def test_cannot_bind_exits_2(env):
    busy = free_port()
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", busy))
    s.listen()
    try:
        path = env.write("busy.conf", GOOD.replace("{port}", str(busy)))
        r = run("-f", "-c", path)
        assert r.returncode == 2
        assert f"{path}:4:" in r.stderr and "web" in r.stderr
    finally:
        s.close()


def test_sigterm_exits_0(env):
    port = free_port()
    gw = env.gateway(GOOD.replace("{port}", str(port)), wait=[port])
    gw.send(signal.SIGTERM)
    assert gw.p.wait(10) == 0


def test_T_prints_the_effective_configuration(env):
    path = env.write("good.conf", GOOD.replace("{port}", "8080"))
    r = run("-T", "-c", path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for line in ["workers 1;", "stats off;",
                 "    check http /health interval 1s timeout 1s rise 2 fall 3;",
                 "    server 127.0.0.1:9002 weight 2;", "    datacenters ams fra;",
                 "    retries 2;", "    hold_timeout 5s;", "    max_header_size 15k;"]:
        assert line + "\n" in out, out
    # What -T prints is a configuration: checked and printed again, it is the same.
    r2 = run("-T", "-c", env.write("again.conf", out))
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.split("\n", 1)[1] == out.split("\n", 1)[1]


def test_T_on_a_bad_file_prints_only_the_errors(env):
    path = env.write("bad.conf", "workers many;\n" + GOOD.replace("{port}", "8080"))
    r = run("-T", "-c", path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert f"{path}:1:" in r.stderr and "workers" in r.stderr


def test_log_file_in_a_missing_directory_fails_the_check(env):
    path = env.write("log.conf", "log /nonexistent-dir/edgegate.log info;\n"
                     + GOOD.replace("{port}", str(free_port())))
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert f"{path}:1:" in r.stderr and "/nonexistent-dir/edgegate.log" in r.stderr, r.stderr
    # Started anyway, it fails as the check said, naming the line.
    r = run("-f", "-c", path)
    assert r.returncode == 2
    assert f"{path}:1:" in r.stderr, r.stderr


def test_pid_file_in_a_missing_directory_fails_the_check(env):
    path = env.write("pid.conf", "\npid /nonexistent-dir/edgegate.pid;\n"
                     + GOOD.replace("{port}", "8080"))
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert f"{path}:2:" in r.stderr and "pid" in r.stderr, r.stderr


def test_duration_without_unit_is_refused(env):
    path = env.write("units.conf",
                     "datacenter ams { server 127.0.0.1:9001; check tcp interval 500; }\n"
                     "listener web { listen 127.0.0.1:8080; }\n")
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert f"{path}:1:" in r.stderr and "ms, s, m, h or d" in r.stderr, r.stderr


def test_include_is_relative_to_the_including_file(env):
    os.makedirs(env.path("conf.d"))
    env.write("conf.d/ams.conf", "datacenter ams { server 127.0.0.1:9001; }\n")
    env.write("conf.d/web.conf", "listener web { listen 127.0.0.1:8080; }\n")
    path = env.write("main.conf", "include conf.d/*.conf;\n")
    r = subprocess.run([EG_BIN, "-T", "-c", path], cwd="/", capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    assert "datacenter ams {" in r.stdout and "listener web {" in r.stdout


def test_include_loop_and_missing_file_are_errors(env):
    a = env.write("a.conf", "datacenter ams { server 127.0.0.1:9001; }\n"
                  "listener web { listen 127.0.0.1:8080; }\ninclude b.conf;\n")
    b = env.write("b.conf", "\ninclude a.conf;\ninclude missing.conf;\n")
    r = run("-t", "-c", a)
    assert r.returncode == 1
    assert f"{b}:2:" in r.stderr and "include loop" in r.stderr, r.stderr
    assert f"{b}:3:" in r.stderr and "missing.conf" in r.stderr, r.stderr
