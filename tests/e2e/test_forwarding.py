"""What the gateway sends to servers: forwarding headers (X-Forwarded-For,
X-Forwarded-Proto, Forwarded), hop-by-hop headers, bytes passed through
untouched, and the PROXY protocol both ways (send_proxy, accept_proxy); and
the Connection header clients get back.

The server here is a small Python backend that records the raw bytes of every
connection, so the tests assert exactly what went over the wire."""

import socket
import struct
import threading
import time

import pytest

from conftest import RawHTTP, free_port, stats, wait_until

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# What nginx answers on a connection it keeps (its `return 200` setup in
# tests/bench), plus a header its Connection names.
NGINX_KEEPALIVE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n"
                   b"Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n"
                   b"X-Hop: 1\r\nX-Kept: 2\r\n\r\nok")
XFP = b"X-Forwarded-Proto: http\r\n"


# ---------------------------------------------------------------- backend

class BConn:
    """One connection the backend accepted."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.raw = b""
        self.proxy = None        # the PROXY header that opened it, if any
        self.requests = []       # raw bytes of each complete request
        self.closed = False      # the gateway closed it


def _chunked_end(buf, pos):
    """End offset of a chunked body starting at POS, or None if incomplete."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            while True:                     # trailer fields, then an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2


def _request_end(buf):
    """Length of the first complete request in BUF, or None."""
    he = buf.find(b"\r\n\r\n")
    if he < 0:
        return None
    head_end = he + 4
    cl, chunked = 0, False
    for line in buf[:he].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            cl = int(value.strip())
        elif name == b"transfer-encoding" and value.strip().lower().endswith(b"chunked"):
            chunked = True
    if chunked:
        return _chunked_end(buf, head_end)
    return head_end + cl if len(buf) >= head_end + cl else None


class Backend:
    """A threaded HTTP/1.1 server answering every request 200 "ok" and
    recording the bytes received on each connection."""

    def __init__(self, close_after=False, drop_second=False, response=RESPONSE, early=False):
        self.close_after = close_after     # close each connection after one answer
        self.drop_second = drop_second     # close, unanswered, at a connection's 2nd request
        self.response = response           # the answer to every request
        self.early = early                 # answer once the head is in, before the body
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(64)
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                s, peer = self.ls.accept()
            except OSError:
                return
            c = BConn(s, peer)
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        proxy_checked = False
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    break
                with self.lock:
                    c.raw += data
                buf += data
                if not proxy_checked:
                    if buf.startswith(V2SIG[:len(buf)]) and len(buf) < 16:
                        continue
                    if buf.startswith(V2SIG):
                        n = 16 + struct.unpack("!H", buf[14:16])[0]
                        if len(buf) < n:
                            continue
                        c.proxy, buf = buf[:n], buf[n:]
                    elif buf.startswith(b"PROXY "[:len(buf)]):
                        eol = buf.find(b"\r\n")
                        if len(buf) < 6 or eol < 0:
                            continue
                        c.proxy, buf = buf[:eol + 2], buf[eol + 2:]
                    proxy_checked = True
                if self.early and b"\r\n\r\n" in buf:
                    c.sock.sendall(self.response)
                    continue
                while True:
                    n = _request_end(buf)
                    if n is None:
                        break
                    with self.lock:
                        c.requests.append(buf[:n])
                    buf = buf[n:]
                    if self.drop_second and len(c.requests) == 2:
                        return
                    c.sock.sendall(self.response)
                    if self.close_after:
                        return
        except OSError:
            pass
        finally:
            c.closed = True
            c.sock.close()

    def snapshot(self):
        with self.lock:
            return list(self.conns)

    def requests(self):
        with self.lock:
            return [r for c in self.conns for r in c.requests]

    def wait_requests(self, n, timeout=3.0):
        return wait_until(lambda: len(self.requests()) >= n and self.requests(),
                          timeout=timeout, what=f"{n} requests at the backend")

    def stop(self):
        self.stopping = True
        self.ls.close()
        for c in self.snapshot():
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.stop()


# ---------------------------------------------------------------- helpers

def conf(port, sp, backend, extra="", mode="http"):
    return (f"stats 127.0.0.1:{sp};\n"
            f"datacenter dc1 {{ server {backend.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; mode {mode}; {extra} }}\n")


def start(env, backend, extra="", mode="http"):
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, backend, extra, mode), wait=[port])
    return port, sp


def exchange(port, raw, prefix=b""):
    """PREFIX + RAW on a new connection; returns (status, body, RawHTTP)."""
    c = RawHTTP(port, timeout=3)
    c.send(prefix + raw)
    status, _, body = c.response()
    return status, body, c


def one(env, backend, raw, extra=""):
    """Sends one raw request through a gateway; returns what the backend got."""
    port, _ = start(env, backend, extra)
    status, body, c = exchange(port, raw)
    assert (status, body) == (200, b"ok")
    c.close()
    reqs = backend.wait_requests(1)
    assert len(reqs) == 1
    return reqs[0]


def head_lines(req):
    return req.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def closed_without_answer(s, timeout=3.0):
    """True when the gateway closes S (EOF or reset) without sending a byte."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return got == b""


def pp_v1(src, dst, sport, dport):
    return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()


def pp_v2(src, dst, sport, dport, fam=socket.AF_INET):
    a = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    return V2SIG + bytes([0x21, 0x11 if fam == socket.AF_INET else 0x21]) + \
        struct.pack("!H", len(a)) + a


# ------------------------------------------------ X-Forwarded-For / Proto

def test_xff_added_when_absent(env, backend):
    raw = b"GET /a HTTP/1.1\r\nHost: test\r\nX-Custom: 1\r\n\r\n"
    got = one(env, backend, raw)
    assert got == (b"GET /a HTTP/1.1\r\nHost: test\r\nX-Custom: 1\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


def test_xff_appended_to_last_existing_header(env, backend):
    raw = (b"GET /b HTTP/1.1\r\nHost: test\r\n"
           b"X-Forwarded-For: 192.0.2.1\r\n"
           b"X-Other: between\r\n"
           b"x-forwarded-for: 192.0.2.2,  198.51.100.3\r\n"
           b"Accept: */*\r\n\r\n")
    got = one(env, backend, raw)
    lines = head_lines(got)
    # Earlier XFF line untouched, the last one (any case) extended in place.
    assert lines == [b"GET /b HTTP/1.1", b"Host: test",
                     b"X-Forwarded-For: 192.0.2.1",
                     b"X-Other: between",
                     b"x-forwarded-for: 192.0.2.2,  198.51.100.3, 127.0.0.1",
                     b"Accept: */*",
                     b"X-Forwarded-Proto: http"]
    assert sum(1 for l in lines if l.lower().startswith(b"x-forwarded-for")) == 2


def test_xff_appended_to_empty_header(env, backend):
    raw = b"GET /c HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: \r\n\r\n"
    got = one(env, backend, raw)
    assert head_lines(got) == [b"GET /c HTTP/1.1", b"Host: test",
                               b"X-Forwarded-For: 127.0.0.1", b"X-Forwarded-Proto: http"]


def test_client_x_forwarded_proto_replaced(env, backend):
    raw = (b"GET /d HTTP/1.1\r\nHost: test\r\nX-Forwarded-Proto: https\r\n"
           b"X-A: 1\r\nx-forwarded-proto: wss\r\n\r\n")
    got = one(env, backend, raw)
    assert got == (b"GET /d HTTP/1.1\r\nHost: test\r\nX-A: 1\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


def test_forward_for_off_keeps_client_headers(env, backend):
    raw = (b"GET /e HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 192.0.2.1\r\n"
           b"X-Forwarded-Proto: https\r\n\r\n")
    got = one(env, backend, raw, "forward_for off;")
    assert got == raw


def test_forward_for_off_adds_nothing(env, backend):
    raw = b"GET /f HTTP/1.1\r\nHost: test\r\n\r\n"
    assert one(env, backend, raw, "forward_for off;") == raw


def test_forwarded_on(env, backend):
    raw = b"GET /g HTTP/1.1\r\nHost: test\r\n\r\n"
    got = one(env, backend, raw, "forwarded on;")
    assert got == (b"GET /g HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 127.0.0.1\r\n" + XFP +
                   b"Forwarded: for=127.0.0.1;proto=http\r\n\r\n")


def test_forwarded_on_forward_for_off(env, backend):
    raw = b"GET /h HTTP/1.1\r\nHost: test\r\nForwarded: for=192.0.2.1\r\n\r\n"
    got = one(env, backend, raw, "forward_for off; forwarded on;")
    # The client's Forwarded stays as it was; ours is the last element.
    assert got == (b"GET /h HTTP/1.1\r\nHost: test\r\nForwarded: for=192.0.2.1\r\n"
                   b"Forwarded: for=127.0.0.1;proto=http\r\n\r\n")


def test_forwarding_headers_on_every_keepalive_request(env, backend):
    port, _ = start(env, backend)
    c = RawHTTP(port, timeout=3)
    for i in range(3):
        c.send(b"GET /k%d HTTP/1.1\r\nHost: test\r\n\r\n" % i)
        assert c.response()[0] == 200
    c.close()
    reqs = backend.wait_requests(3)
    for i, r in enumerate(reqs):
        assert r == (b"GET /k%d HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 127.0.0.1\r\n" % i +
                     XFP + b"\r\n")


# ------------------------------------------------------------- hop-by-hop

def test_hop_by_hop_headers_not_forwarded(env, backend):
    raw = (b"GET /hop HTTP/1.1\r\nHost: test\r\n"
           b"Connection: keep-alive\r\n"
           b"Keep-Alive: timeout=5, max=100\r\n"
           b"X-Before: 1\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"TE: trailers\r\n"
           b"connection: Keep-Alive\r\n"
           b"X-After: 2\r\n"
           b"Upgrade: h2c\r\n\r\n")
    got = one(env, backend, raw)
    # Upgrade without "Connection: upgrade" is not an upgrade: dropped too.
    assert got == (b"GET /hop HTTP/1.1\r\nHost: test\r\nX-Before: 1\r\nX-After: 2\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


def test_headers_named_in_connection_are_hop_by_hop(env, backend):
    raw = (b"GET /named HTTP/1.1\r\nHost: test\r\n"
           b"Connection: X-Secret, x-other\r\n"
           b"X-Secret: 1\r\nX-Kept: 2\r\nX-Other: 3\r\n\r\n")
    got = one(env, backend, raw)
    assert got == (b"GET /named HTTP/1.1\r\nHost: test\r\nX-Kept: 2\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


def test_connection_cannot_strip_framing_headers(env, backend):
    """Naming Content-Length or Host in Connection must not remove them: the
    server would then frame or route the request differently from us."""
    raw = (b"POST /framed HTTP/1.1\r\nHost: test\r\n"
           b"Connection: Content-Length, Host\r\nContent-Length: 5\r\n\r\nhello")
    got = one(env, backend, raw)
    assert got == (b"POST /framed HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\nhello")


def test_connection_close_from_client_not_forwarded(env, backend):
    raw = b"GET /close HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    got = one(env, backend, raw)
    assert got == (b"GET /close HTTP/1.1\r\nHost: test\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


def test_upgrade_keeps_connection_and_upgrade(env, backend):
    raw = (b"GET /ws HTTP/1.1\r\nHost: test\r\n"
           b"Connection: Upgrade\r\n"
           b"Upgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n"
           b"Keep-Alive: 5\r\n"
           b"TE: trailers\r\n\r\n")
    got = one(env, backend, raw)
    assert got == (b"GET /ws HTTP/1.1\r\nHost: test\r\n"
                   b"Connection: Upgrade\r\n"
                   b"Upgrade: websocket\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n"
                   b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n")


# ------------------------------------------------- bytes passed untouched

def test_headers_and_body_byte_for_byte(env, backend):
    body = bytes(range(256)) * 40 + b"\r\n\r\nGET /not-a-request HTTP/1.1\r\n\r\n"
    head = (b"PUT /path/%7E?q=a%20b&r=%2F HTTP/1.1\r\n"
            b"host: Example.COM:8080\r\n"
            b"x-lower: v\r\n"
            b"X-MiXeD-CaSe:   spaced   value   \r\n"
            b"X-Tab:\tt\tv\r\n"
            b"X-Empty:\r\n"
            b"X-Obs-Text: caf\xc3\xa9 \xff\r\n"
            b"X-Punct: !#$%&'*+-.^_`|~:;,\"()<>@[]{}\\/?=\r\n"
            b"Cookie: a=1; b=2\r\n"
            b"Cookie: c=3\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n")
    raw = head + b"\r\n" + body
    got = one(env, backend, raw, "forward_for off;")
    assert got == raw
    # With forwarding on, the same bytes plus our two lines before the end.
    with backend.lock:
        backend.conns.clear()
    got = one(env, backend, raw)
    assert got == head + b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n" + body


def test_chunked_body_byte_for_byte(env, backend):
    head = b"POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
    body = (b"5;name=value;x=\"q\"\r\nhello\r\n"
            b"1A\r\n" + bytes(range(0x61, 0x61 + 26)) + b"\r\n"
            b"0\r\nX-Trailer: t1\r\nX-Other:  t2\r\n\r\n")
    raw = head + body
    got = one(env, backend, raw, "forward_for off;")
    assert got == raw


# ------------------------------------- the Connection header towards clients

def read_until_closed(s, timeout=3.0):
    """What S receives until the gateway closes it; None if it stays open."""
    s.settimeout(timeout)
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return got
        except socket.timeout:
            return None
        if not b:
            return got
        got += b


def fields(raw):
    """The header fields of the response head in RAW: (lower name, value)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (l.partition(b":") for l in head)]


def connection_of(raw):
    """The values of every hop-by-hop field of the response head in RAW."""
    return [(n, v) for n, v in fields(raw) if n in (b"connection", b"keep-alive", b"x-hop")]


@pytest.fixture
def nginx_like():
    b = Backend(response=NGINX_KEEPALIVE)
    yield b
    b.stop()


@pytest.mark.parametrize("req", [
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n",
], ids=["close", "close-in-list", "http10", "http10-close"])
def test_client_that_closes_gets_connection_close(env, nginx_like, req):
    """RFC 9112 9.6: a server that closes after a response says so. The
    server's `Connection: keep-alive` (and what it names, and Keep-Alive)
    concern its connection to us: the client gets `Connection: close`, once,
    then the connection ends."""
    port, _ = start(env, nginx_like)
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(req)
    got = read_until_closed(s)
    s.close()
    assert got is not None, "the gateway kept the connection open"
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nok")
    assert connection_of(got) == [(b"connection", b"close")]
    assert (b"x-kept", b"2") in fields(got) and (b"content-length", b"2") in fields(got)


def test_keepalive_client_gets_no_connection_header(env, nginx_like):
    port, _ = start(env, nginx_like)
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    for i in range(3):
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
        got = b""
        while not got.endswith(b"\r\n\r\nok"):
            b = s.recv(65536)
            assert b, "the gateway closed a keep-alive connection"
            got += b
        assert connection_of(got) == []
        assert (b"x-kept", b"2") in fields(got)
    s.close()


def test_http10_keepalive_client_gets_keep_alive(env, nginx_like):
    """An HTTP/1.0 client that asked for keep-alive and keeps its connection
    is told so (without it, HTTP/1.0 means close)."""
    port, _ = start(env, nginx_like)
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    for i in range(2):
        s.sendall(b"GET /%d HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" % i)
        got = b""
        while not got.endswith(b"\r\n\r\nok"):
            b = s.recv(65536)
            assert b, "the gateway closed a keep-alive connection"
            got += b
        assert connection_of(got) == [(b"connection", b"keep-alive")]
    s.close()


def test_http10_keepalive_client_of_dcsim(env):
    """The same with dcsim, which answers an HTTP/1.0 keep-alive request with
    its own `Connection: keep-alive`: the client gets one, not two."""
    a = env.dcsim("dc1")
    port = free_port()
    env.gateway(f"datacenter dc1 {{ server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; mode http; }}\n", wait=[port])
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    for path in (b"/a", b"/b"):
        s.sendall(b"GET " + path + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        got = b""
        while not got.endswith(b"path=" + path + b"\n"):
            b = s.recv(65536)
            assert b, "the gateway closed a keep-alive connection"
            got += b
        assert connection_of(got) == [(b"connection", b"keep-alive")]
    s.sendall(b"GET /c HTTP/1.0\r\n\r\n")
    got = read_until_closed(s)
    s.close()
    assert got is not None and connection_of(got) == [(b"connection", b"close")]


def test_answer_before_the_whole_body_closes(env):
    """A server that answers before the request body is all in (a 413, an
    auth failure): the client connection ends after the answer, and the
    answer says so."""
    b = Backend(response=NGINX_KEEPALIVE, early=True)
    try:
        port, _ = start(env, b)
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        got = read_until_closed(s)
        s.close()
        assert got is not None, "the gateway kept the connection open"
        assert got.endswith(b"\r\n\r\nok")
        assert connection_of(got) == [(b"connection", b"close")]
    finally:
        b.stop()


# ---------------------------------------------------------- send_proxy

def _proxy_v1_of(conn_port, lport):
    return pp_v1("127.0.0.1", "127.0.0.1", conn_port, lport)


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_send_proxy_v1(env, backend, mode):
    port, _ = start(env, backend, "send_proxy v1;", mode)
    a = RawHTTP(port, timeout=3)
    a_port = a.s.getsockname()[1]
    for i in range(2):                       # keep-alive: same backend connection
        assert a.request(f"/a{i}") == (200, {"content-length": "2"}, b"ok")
    conns = backend.snapshot()
    assert len(conns) == 1
    ca = conns[0]
    assert ca.proxy == _proxy_v1_of(a_port, port)
    assert ca.raw.count(b"PROXY") == 1 and ca.raw.startswith(ca.proxy + b"GET /a0 ")
    assert len(ca.requests) == 2 and ca.requests[1].startswith(b"GET /a1 ")

    # A second client, while the first is still connected: its own connection.
    b = RawHTTP(port, timeout=3)
    b_port = b.s.getsockname()[1]
    assert b.request("/b0")[0] == 200
    assert a.request("/a2")[0] == 200
    assert b.request("/b1")[0] == 200
    conns = backend.snapshot()
    assert len(conns) == 2
    cb = conns[1]
    assert cb.proxy == _proxy_v1_of(b_port, port)
    assert [r.split(b" ")[1] for r in ca.requests] == [b"/a0", b"/a1", b"/a2"]
    assert [r.split(b" ")[1] for r in cb.requests] == [b"/b0", b"/b1"]
    assert cb.raw.count(b"PROXY") == 1

    # A client that leaves takes its server connection along: it is never
    # pooled for someone else.
    a.close()
    wait_until(lambda: ca.closed, timeout=3, what="a's backend connection closed")
    c = RawHTTP(port, timeout=3)
    c_port = c.s.getsockname()[1]
    assert c.request("/c0")[0] == 200
    conns = backend.snapshot()
    assert len(conns) == 3
    assert conns[2].proxy == _proxy_v1_of(c_port, port)
    assert [r.split(b" ")[1] for r in conns[2].requests] == [b"/c0"]
    b.close()
    c.close()


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_send_proxy_v2(env, backend, mode):
    port, _ = start(env, backend, "send_proxy v2;", mode)
    a = RawHTTP(port, timeout=3)
    a_port = a.s.getsockname()[1]
    assert a.request("/v2a")[0] == 200
    assert a.request("/v2b")[0] == 200
    conns = backend.snapshot()
    assert len(conns) == 1
    p = conns[0].proxy
    assert p is not None and p[:12] == V2SIG
    assert p[12] == 0x21                     # version 2, PROXY command
    assert p[13] == 0x11                     # TCP over IPv4
    assert struct.unpack("!H", p[14:16])[0] == 12 and len(p) == 28
    assert socket.inet_ntoa(p[16:20]) == "127.0.0.1"
    assert socket.inet_ntoa(p[20:24]) == "127.0.0.1"
    assert struct.unpack("!HH", p[24:28]) == (a_port, port)
    assert p == pp_v2("127.0.0.1", "127.0.0.1", a_port, port)
    assert conns[0].raw.count(V2SIG) == 1 and len(conns[0].requests) == 2
    b = RawHTTP(port, timeout=3)
    assert b.request("/v2c")[0] == 200
    conns = backend.snapshot()
    assert len(conns) == 2
    assert conns[1].proxy == pp_v2("127.0.0.1", "127.0.0.1", b.s.getsockname()[1], port)
    a.close()
    b.close()


def test_send_proxy_on_every_new_server_connection(env):
    """The server closes its connection after each answer (an idle
    keep-alive connection closed by the server): each request of the
    keep-alive client goes on a new server connection, each opened by a
    PROXY header."""
    backend = Backend(close_after=True)
    try:
        port, _ = start(env, backend, "send_proxy v1;")
        a = RawHTTP(port, timeout=3)
        a_port = a.s.getsockname()[1]
        for i in range(3):
            assert a.request(f"/n{i}")[0] == 200
            wait_until(lambda: all(c.closed for c in backend.snapshot()), timeout=3,
                       what="server closed its side")
            time.sleep(0.05)       # the gateway notices before the next request
        a.close()
        conns = backend.snapshot()
        assert len(conns) == 3
        for i, c in enumerate(conns):
            assert c.proxy == _proxy_v1_of(a_port, port)
            assert c.raw.count(b"PROXY") == 1
            assert [r.split(b" ")[1] for r in c.requests] == [b"/n%d" % i]
    finally:
        backend.stop()


@pytest.mark.parametrize("extra", ["send_proxy v1;", ""], ids=["send_proxy", "pooled"])
def test_kept_server_connection_closed_under_a_request(env, extra):
    """The server closes a kept-alive connection just as the next request
    arrives (the usual keep-alive race; made deterministic here: the server
    reads the request, then closes without a byte of answer). That is a
    stale connection, not a failing server: the GET must go out again on a
    fresh connection (with its own PROXY header), and the client sees 200.

    Regression test for a bug found while writing it (fixed in abeebfd):
    edgegate answered 502, because attempt_failed() only tried *another*
    server (route_next() skips tried ones), so with one server nothing was
    left; and it counted the close as a passive failure of the server, so a
    few such races marked a healthy server down. nginx and haproxy retry a
    request that failed on a reused connection on a new one."""
    backend = Backend(drop_second=True)
    try:
        port, sp = start(env, backend, extra)
        a = RawHTTP(port, timeout=3)
        a_port = a.s.getsockname()[1]
        assert a.request("/first")[0] == 200
        assert a.request("/second")[0] == 200
        a.close()
        conns = backend.snapshot()
        assert [[r.split(b" ")[1] for r in c.requests] for c in conns] == \
            [[b"/first", b"/second"], [b"/second"]]
        if extra:
            assert [c.proxy for c in conns] == [_proxy_v1_of(a_port, port)] * 2
        srv = stats(sp)["datacenters"][0]["servers"][0]
        assert srv["up"] and srv["failures_total"] == 0
    finally:
        backend.stop()


@pytest.mark.parametrize("idem", [False, True], ids=["plain", "idempotency-key"])
def test_kept_server_connection_closed_under_a_post(env, idem):
    """The same race for a POST: it reached a server that may have acted on
    it, so it is not sent again (502) unless it carries Idempotency-Key."""
    backend = Backend(drop_second=True)
    try:
        port, sp = start(env, backend)
        a = RawHTTP(port, timeout=3)
        assert a.request("/first")[0] == 200
        h = {"Idempotency-Key": "k1"} if idem else {}
        status, _, _ = a.request("/post", method="POST", headers=h, body=b"data")
        a.close()
        paths = [[r.split(b" ")[1] for r in c.requests] for c in backend.snapshot()]
        if idem:
            assert status == 200 and paths == [[b"/first", b"/post"], [b"/post"]]
        else:
            assert status == 502 and paths == [[b"/first", b"/post"]]
    finally:
        backend.stop()


def test_ipv6_client(env, backend):
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter dc1 {{ server {backend.addr}; }}\n"
                f"listener web {{ listen [::1]:{port}; mode http; forwarded on; "
                f"send_proxy v1; }}\n", wait=[port])
    c = RawHTTP(port, host="::1", timeout=3)
    c_port = c.s.getsockname()[1]
    c.send(b"GET /v6 HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
    assert c.response()[0] == 200
    c.close()
    req = backend.wait_requests(1)[0]
    assert req == (b"GET /v6 HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 192.0.2.1, ::1\r\n" +
                   XFP + b'Forwarded: for="[::1]";proto=http\r\n\r\n')
    assert backend.snapshot()[0].proxy == f"PROXY TCP6 ::1 ::1 {c_port} {port}\r\n".encode()


def test_without_send_proxy_nothing_precedes_request(env, backend):
    port, _ = start(env, backend)
    a = RawHTTP(port, timeout=3)
    assert a.request("/plain")[0] == 200
    a.close()
    backend.wait_requests(1)
    c = backend.snapshot()[0]
    assert c.proxy is None and c.raw.startswith(b"GET /plain HTTP/1.1\r\n")


# --------------------------------------------------------- accept_proxy

CLIENT_V1 = pp_v1("203.0.113.7", "127.0.0.1", 5555, 80)
GET = b"GET /pp HTTP/1.1\r\nHost: test\r\n\r\n"


def test_accept_proxy_v1_client_address(env, backend):
    port, _ = start(env, backend, "accept_proxy; forwarded on;")
    status, body, c = exchange(port, GET, CLIENT_V1)
    assert (status, body) == (200, b"ok")
    # keep-alive: the next request still comes from the announced address
    c.send(b"GET /pp2 HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n")
    assert c.response()[0] == 200
    c.close()
    reqs = backend.wait_requests(2)
    assert reqs[0] == (b"GET /pp HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 203.0.113.7\r\n" +
                       XFP + b"Forwarded: for=203.0.113.7;proto=http\r\n\r\n")
    assert b"X-Forwarded-For: 192.0.2.9, 203.0.113.7\r\n" in reqs[1]
    # the header itself is consumed, never forwarded
    assert b"PROXY" not in backend.snapshot()[0].raw


def test_accept_proxy_v2_client_address(env, backend):
    port, _ = start(env, backend, "accept_proxy; forwarded on;")
    status, _, c = exchange(port, GET, pp_v2("198.51.100.23", "127.0.0.1", 40000, 443))
    assert status == 200
    c.close()
    status, _, c = exchange(port, GET, pp_v2("2001:db8::17", "2001:db8::1", 40001, 443,
                                             socket.AF_INET6))
    assert status == 200
    c.close()
    reqs = backend.wait_requests(2)
    assert b"\r\nX-Forwarded-For: 198.51.100.23\r\n" in reqs[0]
    assert b"\r\nForwarded: for=198.51.100.23;proto=http\r\n" in reqs[0]
    assert b"\r\nX-Forwarded-For: 2001:db8::17\r\n" in reqs[1]
    assert b"\r\nForwarded: for=\"[2001:db8::17]\";proto=http\r\n" in reqs[1]


@pytest.mark.parametrize("header", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    V2SIG + b"\x20\x00\x00\x00",                        # LOCAL, no address
    V2SIG + b"\x20\x11\x00\x0c" + b"\x01" * 12,          # LOCAL: addresses ignored
], ids=["v1-unknown", "v1-unknown-with-fields", "v2-local", "v2-local-with-addresses"])
def test_accept_proxy_unknown_or_local_keeps_socket_address(env, backend, header):
    port, _ = start(env, backend, "accept_proxy;")
    status, _, c = exchange(port, GET, header)
    assert status == 200
    c.close()
    req = backend.wait_requests(1)[0]
    assert req == GET[:-2] + b"X-Forwarded-For: 127.0.0.1\r\n" + XFP + b"\r\n"


def test_accept_proxy_header_never_sent_times_out(env, backend):
    port, _ = start(env, backend, "accept_proxy; handshake_timeout 500ms;")
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    t0 = time.time()
    s.sendall(b"PROXY TCP4 203.0.113.7 ")        # and nothing more
    assert closed_without_answer(s, timeout=3)
    assert 0.4 < time.time() - t0 < 2.5
    s.close()
    assert backend.snapshot() == []


def test_accept_proxy_client_ip_session_key(env, backend):
    port, sp = start(env, backend, "accept_proxy; session client_ip;")
    for src in ("203.0.113.7", "203.0.113.7", "198.51.100.1", "203.0.113.7"):
        status, _, c = exchange(port, GET, pp_v1(src, "127.0.0.1", 5555, 80))
        assert status == 200
        c.close()
    st = stats(sp)["counters"]
    # Keyed on the announced address: 203.0.113.7 new then known twice,
    # 198.51.100.1 new. Keyed on the socket's 127.0.0.1 it would be 1 / 3.
    assert (st["affinity_misses_total"], st["affinity_hits_total"]) == (2, 2)
    assert [r.split(b"X-Forwarded-For: ")[1].split(b"\r\n")[0]
            for r in backend.wait_requests(4)] == [b"203.0.113.7", b"203.0.113.7",
                                                     b"198.51.100.1", b"203.0.113.7"]


def test_accept_proxy_client_ip_session_key_in_redis(env, backend):
    r = env.redis()
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"redis 127.0.0.1:{r.port} {{ prefix t:; }}\n"
                f"datacenter dc1 {{ server {backend.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; mode http; accept_proxy; "
                f"session client_ip; }}\n", wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], timeout=5, what="redis connected")
    status, _, c = exchange(port, GET, CLIENT_V1)
    assert status == 200
    c.close()
    wait_until(lambda: r.client.get("t:aff:203.0.113.7") == "dc1", timeout=3,
               what="affinity stored under the announced address")
    assert r.client.get("t:aff:127.0.0.1") is None


@pytest.mark.parametrize("prefix", [
    b"",                                                     # no header at all
    b"PROXY TCP4 203.0.113.7 127.0.0.1 5555\r\n",             # a field missing
    b"PROXY TCP4 203.0.113.300 127.0.0.1 5555 80\r\n",        # bad address
    b"PROXY TCP4 203.0.113.7 127.0.0.1 05555 80\r\n",         # leading zero
    b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\n",            # bare LF
    b"PROXY TCP6 203.0.113.7 127.0.0.1 5555 80\r\n",          # family mismatch
    b"PROXY  TCP4 203.0.113.7 127.0.0.1 5555 80\r\n",         # two spaces
    b"proxy TCP4 203.0.113.7 127.0.0.1 5555 80\r\n",          # lowercase
    V2SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,               # version 3
    V2SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12,               # UDP
], ids=["none", "missing-field", "bad-address", "leading-zero", "bare-lf", "tcp6-v4-addr",
        "two-spaces", "lowercase", "v2-version-3", "v2-udp"])
def test_accept_proxy_invalid_header_closes(env, backend, prefix):
    port, sp = start(env, backend, "accept_proxy;")
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(prefix + GET)
    assert closed_without_answer(s)
    s.close()
    time.sleep(0.1)
    assert backend.snapshot() == []
    assert stats(sp)["datacenters"][0]["servers"][0]["connections_total"] == 0
    # the listener still works for a well-behaved balancer
    status, _, c = exchange(port, GET, CLIENT_V1)
    assert status == 200
    c.close()


def test_accept_proxy_from_untrusted_source_refused(env, backend):
    port, sp = start(env, backend, "accept_proxy from 10.0.0.0/8 192.168.0.0/16;")
    for _ in range(3):
        t0 = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
        except ConnectionResetError:
            continue                 # reset before connect() even returned
        try:
            s.sendall(CLIENT_V1 + GET)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_without_answer(s, timeout=2)
        assert time.time() - t0 < 1.0, "closed at once, not after a timeout"
        s.close()
    time.sleep(0.1)
    assert backend.snapshot() == []
    assert stats(sp)["datacenters"][0]["servers"][0]["connections_total"] == 0


def test_accept_proxy_from_trusted_source(env, backend):
    port, _ = start(env, backend, "accept_proxy from 10.0.0.0/8 127.0.0.0/8;")
    status, _, c = exchange(port, GET, CLIENT_V1)
    assert status == 200
    c.close()
    assert b"X-Forwarded-For: 203.0.113.7\r\n" in backend.wait_requests(1)[0]


@pytest.mark.parametrize("header,cut", [(CLIENT_V1, 20), (CLIENT_V1, 3),
                                        (pp_v2("203.0.113.7", "127.0.0.1", 5555, 80), 7),
                                        (pp_v2("203.0.113.7", "127.0.0.1", 5555, 80), 14)],
                         ids=["v1-mid-address", "v1-in-signature", "v2-in-signature",
                              "v2-in-length"])
def test_accept_proxy_split_header(env, backend, header, cut):
    port, _ = start(env, backend, "accept_proxy;")
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(header[:cut])
    time.sleep(0.02)
    s.sendall(header[cut:] + GET)
    c = RawHTTP.__new__(RawHTTP)
    c.s, c.buf = s, b""
    assert c.response() == (200, {"content-length": "2"}, b"ok")
    c.close()
    assert b"X-Forwarded-For: 203.0.113.7\r\n" in backend.wait_requests(1)[0]


def test_accept_proxy_tcp_mode_send_proxy_v1(env, backend):
    port, _ = start(env, backend, "accept_proxy; send_proxy v1;", mode="tcp")
    status, body, c = exchange(port, GET, CLIENT_V1)
    assert (status, body) == (200, b"ok")
    c.close()
    backend.wait_requests(1)
    conn = backend.snapshot()[0]
    assert conn.proxy is not None
    fields = conn.proxy.decode().split()
    assert fields[:3] == ["PROXY", "TCP4", "203.0.113.7"]
    assert fields[4] == "5555"
    # tcp mode adds nothing: the request is as the client sent it
    assert conn.requests == [GET]
    assert conn.raw == conn.proxy + GET
    # The destination is the one the client connected to, as announced by
    # the balancer (127.0.0.1:80), not the listener's own address: a PROXY
    # header carries what the server would see with getsockname() had the
    # client connected directly (haproxy's proxy-protocol.txt, section 2),
    # and haproxy relays the received destination. (Regression: edgegate
    # sent its listener address until abeebfd.)
    assert conn.proxy == pp_v1("203.0.113.7", "127.0.0.1", 5555, 80)


def test_accept_proxy_http_mode_send_proxy_v2(env, backend):
    port, _ = start(env, backend, "accept_proxy; send_proxy v2;")
    status, _, c = exchange(port, GET, CLIENT_V1)
    assert status == 200
    c.close()
    backend.wait_requests(1)
    p = backend.snapshot()[0].proxy
    assert p[:16] == V2SIG + b"\x21\x11\x00\x0c"
    assert socket.inet_ntoa(p[16:20]) == "203.0.113.7"
    assert struct.unpack("!H", p[24:26])[0] == 5555
    # the destination the balancer announced, as in tcp mode above
    assert socket.inet_ntoa(p[20:24]) == "127.0.0.1"
    assert struct.unpack("!H", p[26:28])[0] == 80
    assert p == pp_v2("203.0.113.7", "127.0.0.1", 5555, 80)
    assert b"X-Forwarded-For: 203.0.113.7\r\n" in backend.requests()[0]
