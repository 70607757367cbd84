"""make install and make deb produce what an operator installs: the package
passes lintian, its maintainer scripts create the user and stop the service,
its unit verifies and reloads only a valid configuration, and edgegate tells
systemd about readiness, reloads and stops (sd_notify). The documentation's
links resolve inside the repository."""

import glob
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess

import pytest

from conftest import EG_BIN, ROOT, free_port, http_get, wait_until


def run(*cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def deb():
    """`make deb`, once for the module: the path of the package."""
    r = run("make", "deb")
    assert r.returncode == 0, r.stdout + r.stderr
    return sorted(glob.glob(os.path.join(ROOT, "build", "edgegate_0.1.0_*.deb")))[-1]


@pytest.fixture
def unpacked(deb, tmp_path):
    """The package's files in a scratch root, and its control files in
    DEBIAN/ beside them."""
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", deb, str(root / "DEBIAN")], check=True)
    return root


def test_make_install_tree(tmp_path):
    r = run("make", "install", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert r.returncode == 0, r.stderr
    for f in ["usr/sbin/edgegate", "usr/share/man/man8/edgegate.8",
              "usr/sbin/edgegatectl", "usr/share/man/man8/edgegatectl.8",
              "usr/share/man/man5/edgegate.conf.5",
              "etc/edgegate/edgegate.conf", "etc/logrotate.d/edgegate",
              "lib/systemd/system/edgegate.service"]:
        assert (tmp_path / f).is_file(), f
    assert os.access(tmp_path / "usr/sbin/edgegate", os.X_OK)
    unit = (tmp_path / "lib/systemd/system/edgegate.service").read_text()
    assert "ExecStart=/usr/sbin/edgegate -f -c /etc/edgegate/edgegate.conf" in unit
    # The example configuration is valid as shipped, and runs as its own user.
    conf = tmp_path / "etc/edgegate/edgegate.conf"
    r = subprocess.run([str(tmp_path / "usr/sbin/edgegate"), "-t", "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "configuration ok", r.stderr
    assert re.search(r"^user edgegate;", conf.read_text(), re.M)
    r = subprocess.run(["man", "-l", str(tmp_path / "usr/share/man/man8/edgegate.8")],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
    assert "edge routing gateway" in r.stdout
    r = subprocess.run(["man", "-l", str(tmp_path / "usr/share/man/man8/edgegatectl.8")],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
    assert "run-time control" in r.stdout
    # edgegatectl reads the shipped configuration as the gateway does.
    r = subprocess.run([str(tmp_path / "usr/sbin/edgegatectl"), "-c", str(conf), "-T", "1",
                        "status"], capture_output=True, text=True)
    assert r.returncode != 1, r.stderr  # 1: it could not read it; 2: no gateway runs there


def test_make_deb(deb, unpacked):
    info = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True).stdout
    assert "Package: edgegate" in info and "Version: 0.1.0" in info
    assert "libev4" in info and "libhiredis0.14" in info and "libc-ares2" in info
    assert "libnghttp2-14" in info
    assert re.search(r"^Depends:.*\badduser\b", info, re.M)  # postinst runs it
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for f in ["./usr/sbin/edgegate", "./usr/sbin/edgegatectl", "./etc/edgegate/edgegate.conf",
              "./etc/logrotate.d/edgegate", "./lib/systemd/system/edgegate.service",
              "./usr/share/man/man8/edgegate.8.gz", "./usr/share/man/man8/edgegatectl.8.gz",
              "./usr/share/man/man5/edgegate.conf.5.gz", "./usr/share/doc/edgegate/copyright",
              "./usr/share/doc/edgegate/changelog.gz", "./usr/share/doc/edgegate/docs/SPEC.md",
              "./usr/share/lintian/overrides/edgegate"]:
        assert f in files, f
    conffiles = (unpacked / "DEBIAN/conffiles").read_text().split()
    assert conffiles == ["/etc/edgegate/edgegate.conf", "/etc/logrotate.d/edgegate"]
    out = subprocess.run([str(unpacked / "usr/sbin/edgegate"), "-v"], capture_output=True,
                         text=True).stdout
    assert out.strip() == "edgegate 0.1.0"


def test_deb_lintian_clean(deb, unpacked):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (tools/deps.sh test installs it)")
    r = subprocess.run(["lintian", "--fail-on", "error,warning", "--show-overrides", deb],
                       capture_output=True, text=True, timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
    assert tags == [], r.stdout
    assert r.returncode == 0, r.stdout + r.stderr
    # Each override is justified by the comment just above it.
    lines = (unpacked / "usr/share/lintian/overrides/edgegate").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("# "), f"override without a reason: {line}"


def test_deb_binary_stripped(unpacked):
    # What lintian's unstripped-binary-or-object and dh_strip look at.
    for binary in ["edgegate", "edgegatectl"]:
        r = subprocess.run(["readelf", "-S", "-W", str(unpacked / "usr/sbin" / binary)],
                           capture_output=True, text=True, check=True)
        sections = re.findall(r"\]\s+(\.\S+)", r.stdout)
        for s in [".symtab", ".comment", ".note", ".debug_info"]:
            assert s not in sections, (binary, s)
    debug = glob.glob(os.path.join(ROOT, "build", "edgegate_0.1.0_*.debug"))
    assert debug, "the debug information is kept next to the package"


def test_deb_permissions(deb):
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        mode, owner, *_, path = line.split()
        assert owner == "root/root", line
        if mode.startswith("d") or path in ("./usr/sbin/edgegate", "./usr/sbin/edgegatectl"):
            assert mode[1:] == "rwxr-xr-x", line
        else:
            assert mode[1:] == "rw-r--r--", line


# ---- maintainer scripts ----

STUBBED = ["adduser", "getent", "install", "deb-systemd-helper", "deb-systemd-invoke",
           "systemctl"]


class Scripts:
    """Runs the package's maintainer scripts as dpkg would, with the commands
    they call replaced by stubs that log their arguments, and with the paths
    of the system they test (systemd running, the log folder) moved into a
    scratch folder."""

    def __init__(self, unpacked, tmp_path):
        self.dir = tmp_path / "scripts"
        self.bin = tmp_path / "stubs"
        self.calls = tmp_path / "calls"
        self.systemd = tmp_path / "run-systemd-system"
        self.logdir = tmp_path / "var-log-edgegate"
        self.user_exists = tmp_path / "user-exists"
        self.dir.mkdir()
        self.bin.mkdir()
        for name in ["postinst", "prerm", "postrm"]:
            text = (unpacked / "DEBIAN" / name).read_text()
            text = text.replace("/run/systemd/system", str(self.systemd))
            text = text.replace("/var/log/edgegate", str(self.logdir))
            (self.dir / name).write_text(text)
        for cmd in STUBBED:
            body = f'echo "{cmd} $*" >> {self.calls}\n'
            if cmd == "getent":  # the user exists once adduser made it
                body += f'[ -e {self.user_exists} ] || exit 2\n'
            if cmd == "adduser":
                body += f'touch {self.user_exists}\n'
            if cmd == "deb-systemd-helper":  # was-enabled: first installation
                body += '[ "$1" != --quiet ] || [ "$2" != was-enabled ] || exit 0\n'
            p = self.bin / cmd
            p.write_text("#!/bin/sh\n" + body + "exit 0\n")
            p.chmod(0o755)

    def run(self, script, *args, systemd=True):
        if systemd:
            self.systemd.mkdir(exist_ok=True)
        elif self.systemd.exists():
            self.systemd.rmdir()
        self.calls.write_text("")
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}
        r = subprocess.run(["sh", "-e", str(self.dir / script), *args], capture_output=True,
                           text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        return self.calls.read_text().splitlines()


@pytest.fixture
def scripts(unpacked, tmp_path):
    return Scripts(unpacked, tmp_path)


def test_maintainer_scripts_are_valid_sh(unpacked):
    for name in ["postinst", "prerm", "postrm"]:
        path = unpacked / "DEBIAN" / name
        assert os.stat(path).st_mode & 0o777 == 0o755, name
        assert path.read_text().startswith("#!/bin/sh\n"), name
        r = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_postinst_creates_user_and_starts(scripts):
    calls = scripts.run("postinst", "configure", "")
    adduser = [c for c in calls if c.startswith("adduser ")]
    assert len(adduser) == 1, calls
    args = adduser[0].split()
    assert "--system" in args and "--group" in args and args[-1] == "edgegate"
    assert (f"install -d -o edgegate -g adm -m 2750 {scripts.logdir}") in calls
    assert "deb-systemd-helper enable edgegate.service" in calls
    assert "systemctl --system daemon-reload" in calls
    assert calls[-1] == "deb-systemd-invoke start edgegate.service"


def test_postinst_is_idempotent(scripts):
    scripts.run("postinst", "configure", "")
    scripts.logdir.mkdir()
    # Configured again (an upgrade from 0.1.0): the user and the log folder
    # are there already and stay as they are; the service restarts.
    calls = scripts.run("postinst", "configure", "0.1.0")
    assert not [c for c in calls if c.startswith(("adduser", "install"))], calls
    assert calls[-1] == "deb-systemd-invoke restart edgegate.service"
    # Without systemd nothing is started.
    calls = scripts.run("postinst", "configure", "0.1.0", systemd=False)
    assert not [c for c in calls if c.startswith(("deb-systemd-invoke", "systemctl"))], calls


def test_prerm_stops_service_on_remove(scripts):
    assert scripts.run("prerm", "remove") == ["deb-systemd-invoke stop edgegate.service"]
    # An upgrade restarts it from postinst instead; without systemd there is
    # nothing to stop.
    assert scripts.run("prerm", "upgrade", "0.1.1") == []
    assert scripts.run("prerm", "remove", systemd=False) == []


def test_postrm_purge_removes_logs_keeps_user(scripts):
    scripts.logdir.mkdir()
    (scripts.logdir / "edgegate.log").write_text("line\n")
    calls = scripts.run("postrm", "remove")
    assert "systemctl --system daemon-reload" in calls
    assert scripts.logdir.exists()
    calls = scripts.run("postrm", "purge")
    assert "deb-systemd-helper purge edgegate.service" in calls
    assert not scripts.logdir.exists()
    assert not [c for c in calls if c.startswith(("deluser", "userdel"))]


# ---- systemd unit ----

def unit_lines(unpacked, key):
    text = (unpacked / "lib/systemd/system/edgegate.service").read_text()
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


def test_unit_settings(unpacked):
    assert unit_lines(unpacked, "Type") == ["notify"]
    assert unit_lines(unpacked, "KillMode") == ["mixed"]
    assert unit_lines(unpacked, "Restart") == ["on-failure"]
    assert unit_lines(unpacked, "ExecStartPre") == [
        "/usr/sbin/edgegate -t -c /etc/edgegate/edgegate.conf"]
    assert unit_lines(unpacked, "ExecReload") == [
        "/usr/sbin/edgegate -t -c /etc/edgegate/edgegate.conf", "/bin/kill -HUP $MAINPID"]
    # Above the default drain_timeout (30s) and the master's 5s to kill the
    # workers that overrun it.
    assert int(unit_lines(unpacked, "TimeoutStopSec")[0]) > 35


def test_unit_verifies(unpacked, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (package systemd)")
    # The unit as installed, with its command moved into the scratch root so
    # that systemd-analyze finds it executable; the man page is looked up
    # there too.
    unit = (unpacked / "lib/systemd/system/edgegate.service").read_text()
    path = tmp_path / "edgegate.service"
    path.write_text(unit.replace("/usr/sbin/edgegate", str(unpacked / "usr/sbin/edgegate")))
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                       text=True, timeout=60,
                       env={**os.environ, "MANPATH": str(unpacked / "usr/share/man")})
    # Unknown keys and bad values are only warnings for systemd-analyze.
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_logrotate_file(unpacked, tmp_path):
    text = (unpacked / "etc/logrotate.d/edgegate").read_text()
    assert re.search(r"^/var/log/edgegate/\*\.log \{", text, re.M)
    assert re.search(r"^\s+su edgegate adm$", text, re.M)
    assert re.search(r"^\s+create 0640 edgegate adm$", text, re.M)
    assert "systemctl kill --kill-whom=main --signal=SIGUSR1 edgegate.service" in text
    if not shutil.which("logrotate"):
        pytest.skip("logrotate is not installed")
    # logrotate reads it (debug mode: nothing rotated), in a scratch folder and
    # as a user that exists here.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "edgegate.log").write_text("line\n")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text.replace("/var/log/edgegate", str(logs)).replace("edgegate adm",
                                                                          "root root"))
    conf.chmod(0o644)
    r = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "state"), str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "error" not in (r.stdout + r.stderr).lower(), r.stderr
    assert "edgegate.log" in r.stdout + r.stderr


# ---- sd_notify ----

class NotifySocket:
    """The service manager's end of $NOTIFY_SOCKET: a unix datagram socket
    that learns each sender's pid (SO_PASSCRED), as systemd does to keep to
    NotifyAccess=main."""

    def __init__(self, address):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.s.bind(address)
        self.s.settimeout(15)

    def recv(self):
        """(sender pid, {KEY: VALUE})."""
        creds = struct.calcsize("3i")
        data, anc, _, _ = self.s.recvmsg(4096, socket.CMSG_SPACE(creds))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:creds])[0]
        return pid, dict(line.split("=", 1) for line in data.decode().splitlines())

    def pending(self):
        self.s.setblocking(False)
        try:
            self.s.recv(4096)
            return True
        except BlockingIOError:
            return False
        finally:
            self.s.settimeout(15)

    def close(self):
        self.s.close()


def listen_count(port):
    """Listening sockets on PORT: one per worker (SO_REUSEPORT)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


@pytest.fixture(params=[(1, "path"), (2, "abstract")], ids=["single", "workers2"])
def notified(request, env, tmp_path, monkeypatch):
    """An edgegate started with NOTIFY_SOCKET, on a path or an abstract name,
    with one process or two workers: (gateway, notify socket, listener port,
    workers)."""
    workers, kind = request.param
    if kind == "path":
        address = str(tmp_path / "notify")
        name = address
    else:
        address = f"\0edgegate-test-{os.getpid()}-{free_port()}"
        name = "@" + address[1:]
    ns = NotifySocket(address)
    request.addfinalizer(ns.close)
    a = env.dcsim("ams")
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    port = free_port()
    gw = env.gateway(f"workers {workers};\ndrain_timeout 3s;\n"
                     f"datacenter ams {{ server {a.addr}; }}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\n", check=False)
    return gw, ns, port, workers


def test_sd_notify_ready_reload_stop(notified):
    gw, ns, port, workers = notified
    pid, msg = ns.recv()
    # Only the main process speaks (a worker's message would be refused by
    # systemd), and only once every listener answers.
    assert pid == gw.pid and msg["READY"] == "1" and msg["MAINPID"] == str(gw.pid), msg
    assert listen_count(port) == workers
    status, _, body = http_get(port, "/")
    assert status == 200 and body.startswith(b"dc=ams")

    gw.send(signal.SIGHUP)
    pid, msg = ns.recv()
    assert pid == gw.pid and msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0, msg
    pid, msg = ns.recv()
    assert pid == gw.pid and msg["READY"] == "1", msg
    assert http_get(port, "/")[0] == 200

    gw.send(signal.SIGTERM)
    pid, msg = ns.recv()
    assert pid == gw.pid and msg["STOPPING"] == "1", msg
    # The stop timeout covers drain_timeout (3s) and the master's margin.
    assert int(msg["EXTEND_TIMEOUT_USEC"]) == 13_000_000, msg
    assert gw.p.wait(15) == 0
    assert not ns.pending(), "nothing after STOPPING=1"


def exec_reload(unpacked, conf, mainpid):
    """Runs the unit's ExecReload= commands in order, as systemd does (the
    first that fails fails the reload), on CONF with the built binary.
    Returns the exit status of `systemctl reload`: 0 or the failing one."""
    for line in unit_lines(unpacked, "ExecReload"):
        line = line.replace("/usr/sbin/edgegate", EG_BIN)
        line = line.replace("/etc/edgegate/edgegate.conf", conf)
        line = line.replace("$MAINPID", str(mainpid))
        r = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return r.returncode
    return 0


def test_unit_reload_checks_configuration_first(env, unpacked, tmp_path):
    a = env.dcsim("ams")
    port = free_port()
    good = f"datacenter ams {{ server {a.addr}; }}\nlistener web {{ listen 127.0.0.1:{port}; }}\n"
    gw = env.gateway(good, wait=[port])
    # A valid configuration: the reload succeeds and reaches the daemon.
    assert exec_reload(unpacked, gw.conf, gw.pid) == 0
    wait_until(lambda: gw.output().count("configuration reloaded") == 1, what="reload")
    # A broken one: `systemctl reload` fails and the daemon is not signalled.
    with open(gw.conf, "w") as f:
        f.write(good + "bogus_directive;\n")
    assert exec_reload(unpacked, gw.conf, gw.pid) != 0
    # Signals arrive in order: once the next valid reload is done, a SIGHUP
    # sent by the failed one would have been logged before it.
    with open(gw.conf, "w") as f:
        f.write(good)
    assert exec_reload(unpacked, gw.conf, gw.pid) == 0
    wait_until(lambda: gw.output().count("configuration reloaded") == 2, what="reload")
    assert "reload failed" not in gw.output() and "bogus_directive" not in gw.output()
    assert gw.alive() and http_get(port, "/")[0] == 200


# ---- documentation ----

# Inline links [text](target "title") and reference definitions [name]: target.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def test_doc_links_resolve():
    """Every relative link in README.md and docs/*.md names a file of the
    repository (the contract included: docs/SPEC.md), and every #anchor a
    heading of its file."""
    docs = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs",
                                                                             "*.md")))
    assert os.path.join(ROOT, "docs", "SPEC.md") in docs
    bad = []
    for doc in docs:
        text = open(doc, encoding="utf-8").read()
        for target in (a or b for a, b in LINK.findall(text)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not dest.startswith(ROOT + os.sep) or not os.path.exists(dest):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target}")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target} (no such heading)")
    assert bad == []
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "../shared" not in readme


def anchors(md):
    """GitHub's anchors for the headings of MD."""
    out = set()
    for line in open(md, encoding="utf-8"):
        m = re.match(r"#+\s+(.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out
