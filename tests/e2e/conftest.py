"""End-to-end harness: real edgegate, dcsim, redis, clients, on loopback ports
chosen at run time. Every process a test starts is stopped when it ends."""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EG_BIN = os.environ.get("EG_BIN", os.path.join(ROOT, "build", "edgegate"))
DCSIM_BIN = os.path.join(ROOT, "build", "dcsim")


def _ephemeral_floor():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return 32768


_handed_out = set()


def free_port():
    """A free port below the ephemeral range: the kernel never gives it to an
    outgoing connection, so it stays free until the test binds it."""
    import random
    hi = _ephemeral_floor()
    lo = max(1024, hi - 20000)
    for _ in range(1000):
        port = random.randrange(lo, hi)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port")


def listening(port):
    """Is a socket listening on PORT? Read from /proc: connecting to find out
    would open a connection the gateway forwards."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            pass
    return False


def wait_listen(port, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if listening(port):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


def wait_port(port, timeout=5.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class Proc:
    """A child process whose output goes to a file kept for the test report."""

    def __init__(self, argv, logdir, name):
        self.argv = argv
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.log = open(self.logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_output(self, text, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise TimeoutError(f"{self.name}: no {text!r} in output:\n{self.output()[-3000:]}")

    def send(self, sig):
        self.p.send_signal(sig)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGCONT)
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


class Env:
    """What a test starts: dcsims, gateways, files. Torn down at the end."""

    def __init__(self, tmpdir):
        self.dir = tmpdir
        self.procs = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def spawn(self, argv, name):
        p = Proc(argv, self.dir, name)
        self.procs.append(p)
        return p

    def dcsim(self, name, port=None, mode="http", delay=None, extra=()):
        port = port or free_port()
        argv = [DCSIM_BIN, "--name", name, "--listen", f"127.0.0.1:{port}", "--mode", mode]
        if delay:
            argv += ["--delay", delay]
        argv += list(extra)
        p = self.spawn(argv, f"dcsim-{name}-{port}")
        p.wait_output("listening on")
        p.port = port
        p.addr = f"127.0.0.1:{port}"
        return p

    def redis(self, port=None, extra=()):
        port = port or free_port()
        p = self.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", *extra], f"redis-{port}")
        wait_listen(port)
        p.port = port
        import redis as redislib
        p.client = redislib.Redis(port=port, decode_responses=True)
        return p

    def gateway(self, conf, name="edgegate", wait=(), check=True, extra=()):
        """Starts edgegate on CONF (text). WAIT: ports to wait for."""
        path = self.write(f"{name}.conf", conf)
        p = self.spawn([EG_BIN, "-f", "-c", path, *extra], name)
        p.conf = path
        if check:
            for port in wait:
                try:
                    wait_listen(port)
                except TimeoutError:
                    raise TimeoutError(f"gateway did not come up:\n{p.output()}")
        return p

    def teardown(self):
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture
def env(tmp_path):
    e = Env(str(tmp_path))
    yield e
    e.teardown()
    # A sanitizer report anywhere means a memory bug, even if the test passed.
    for p in e.procs:
        out = p.output()
        assert "ERROR: AddressSanitizer" not in out, out[-4000:]
        assert "ERROR: LeakSanitizer" not in out, out[-4000:]
        assert "runtime error:" not in out, out[-4000:]


def http_get(port, path="/", headers=None, timeout=5.0, host="127.0.0.1", method="GET",
             body=None):
    """One request on a new connection; returns (status, headers, body bytes)."""
    req = urllib.request.Request(f"http://{host}:{port}{path}", method=method, data=body,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def stats(port):
    status, _, body = http_get(port, "/stats")
    assert status == 200
    return json.loads(body)


def wait_until(fn, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


def dc_state(stats_port, name):
    for dc in stats(stats_port)["datacenters"]:
        if dc["name"] == name:
            return dc
    raise KeyError(name)


class RawHTTP:
    """A keep-alive HTTP/1.1 client on one socket, to assert on the wire."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def request(self, path="/", headers=None, method="GET", body=b""):
        h = {"Host": "test"}
        h.update(headers or {})
        if body and "Content-Length" not in h and "Transfer-Encoding" not in h:
            h["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return self.response(head=method == "HEAD")

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def response(self, head=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = b""
        if head or status in (204, 304) or 100 <= status < 200:
            return status, headers, body
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        elif "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return status, headers, body

    def closed_by_peer(self, timeout=2.0):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class HeadServer:
    """An HTTP/1.1 server for tests: keep-alive, requests without bodies;
    answer(path) gives each response's bytes (from a thread per
    connection, so it may sleep)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def answer(self, path):
        raise NotImplementedError

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = c.recv(4096)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                try:
                    c.sendall(self.answer(head.split(b" ")[1]))
                except OSError:
                    return


def dc_answer(name, extra=b""):
    """dcsim's answer: 200 with body dc=NAME, EXTRA header lines added."""
    body = b"dc=" + name.encode() + b"\n"
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


class HalfSlow(HeadServer):
    """A datacenter gone gray: every other request answered 2 s late, its
    health check at once."""

    def __init__(self, name):
        self.name, self.n = name, 0
        super().__init__()

    def answer(self, path):
        if path != b"/health":
            with self.lock:
                self.n += 1
                slow = self.n % 2 == 0
            if slow:
                time.sleep(2)
        return dc_answer(self.name)

