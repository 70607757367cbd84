"""http mode: a table of malformed or ambiguous requests. Each one must get
its exact error status, a closed connection, and must never reach a server.

Every case carries a unique marker (case-NNN, in its path) that dcsim --log
would print if the request had been forwarded; the server's byte and
connection counters in /stats must stay at zero as well."""

import socket
import time

import pytest

from conftest import RawHTTP, free_port, stats, wait_until

H = b"Host: x\r\n"

# (id, raw request with {P} for the unique path, expected status)
RAW_CASES = [
    # ---- message framing: Content-Length / Transfer-Encoding ----
    ("cl-then-te", b"POST {P} HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-then-cl", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl-repeated-same", b"POST {P} HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl-repeated-different", b"POST {P} HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl-list", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl-non-numeric", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl-negative", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-plus-sign", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-hex", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-empty", b"POST {P} HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    ("cl-inner-space", b"POST {P} HTTP/1.1\r\n" + H +
     b"Content-Length: 1 0\r\n\r\n0123456789", 400),
    ("cl-19-digits", b"POST {P} HTTP/1.1\r\n" + H +
     b"Content-Length: 1000000000000000000\r\n\r\n", 400),
    ("te-gzip", b"POST {P} HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    ("te-chunked-gzip", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-chunked", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-two-chunked-headers", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-empty-element", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: gzip, , chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-empty-value", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: \r\n\r\n0\r\n\r\n", 400),
    ("te-in-http10", b"POST {P} HTTP/1.0\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # ---- line endings ----
    ("bare-lf-request-line", b"GET {P} HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare-lf-header", b"GET {P} HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
    ("bare-lf-end-of-head", b"GET {P} HTTP/1.1\r\n" + H + b"\n", 400),
    ("bare-cr-request-line", b"GET {P} HTTP/1.1\rHost: x\r\n\r\n", 400),
    ("bare-cr-header-value", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("bare-cr-end-of-head", b"GET {P} HTTP/1.1\r\n" + H + b"\rX\r\n\r\n", 400),
    # ---- header fields ----
    ("obs-fold-space", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    ("obs-fold-tab", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: 1\r\n\tfolded\r\n\r\n", 400),
    ("space-before-colon", b"GET {P} HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", 400),
    ("tab-before-colon", b"GET {P} HTTP/1.1\r\n" + H + b"X-A\t: 1\r\n\r\n", 400),
    ("host-space-before-colon", b"GET {P} HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("name-brackets", b"GET {P} HTTP/1.1\r\n" + H + b"X[a]: 1\r\n\r\n", 400),
    ("name-inner-space", b"GET {P} HTTP/1.1\r\n" + H + b"X a: 1\r\n\r\n", 400),
    ("name-at-sign", b"GET {P} HTTP/1.1\r\n" + H + b"@x: 1\r\n\r\n", 400),
    ("name-empty", b"GET {P} HTTP/1.1\r\n" + H + b": 1\r\n\r\n", 400),
    ("name-without-colon", b"GET {P} HTTP/1.1\r\n" + H + b"X-A\r\n\r\n", 400),
    ("value-nul", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("value-ctrl-01", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("value-esc", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: a\x1bb\r\n\r\n", 400),
    ("value-del", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400),
    ("missing-host", b"GET {P} HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    ("two-hosts", b"GET {P} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    # ---- request line ----
    ("two-spaces-before-target", b"GET  {P} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two-spaces-before-version", b"GET {P}  HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab-separator", b"GET\t{P} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("no-version", b"GET {P}\r\n" + H + b"\r\n", 400),
    ("lowercase-version", b"GET {P} http/1.1\r\n" + H + b"\r\n", 400),
    ("version-trailing-space", b"GET {P} HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("version-garbage", b"GET {P} HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("version-too-long", b"GET {P} HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("target-with-space", b"GET {P} x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-ctrl-byte", b"GET {P}\x01 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-del-byte", b"GET {P}\x7f HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-non-ascii", b"GET {P}\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-invalid-char", b"GE(T {P} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-empty", b" {P} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-too-long", b"A" * 40 + b" {P} HTTP/1.1\r\n" + H + b"\r\n", 400),
    # ---- chunked bodies: the head is valid, the body is not. Head and body
    # arrive together, so the body is scanned before the request is routed:
    # the error must be found before anything is forwarded. ----
    ("chunk-size-not-hex", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-0x", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-empty", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-missing-crlf-after-data", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n", 400),
    ("chunk-data-longer-than-size", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-bare-cr-after-data", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n", 400),
    ("chunk-bare-lf-after-size", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-ctrl-byte", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-trailer-bad-name", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n@bad: 1\r\n\r\n", 400),
    ("chunk-trailer-folded", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n folded\r\n\r\n", 400),
    ("chunk-trailer-nul", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\x00b\r\n\r\n", 400),
    ("chunk-trailer-bare-lf", b"POST {P} HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n", 400),
    # ---- limits (max_request_line 1k, max_header_size 2k, max_headers 20) ----
    ("request-line-too-long", b"GET {P}?" + b"a" * 1100 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("version-past-max-line", b"GET {P}?" + b"a" * 1000 + b" HTTP/1.1" + b"1" * 40 +
     b"\r\n" + H + b"\r\n", 414),
    ("one-header-too-large", b"GET {P} HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 2100 +
     b"\r\n\r\n", 431),
    ("header-block-too-large", b"GET {P} HTTP/1.1\r\n" + H +
     b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 240) for i in range(10)) + b"\r\n", 431),
    ("too-many-headers", b"GET {P} HTTP/1.1\r\n" + H +
     b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(20)) + b"\r\n", 431),
    # ---- versions and methods ----
    ("http-2.0", b"GET {P} HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http-3.1", b"GET {P} HTTP/3.1\r\n" + H + b"\r\n", 505),
    ("connect", b"CONNECT {A}:443 HTTP/1.1\r\nHost: {A}:443\r\n\r\n", 405),
    # ---- a head that never completes: 408 after request_timeout (1s) ----
    ("head-never-completes", b"GET {P} HTTP/1.1\r\n" + H + b"X-A: 1\r\n", 408),
]

CASES = [(cid, raw, status, "case-%03d" % i) for i, (cid, raw, status) in enumerate(RAW_CASES)]
assert len({c[0] for c in CASES}) == len(CASES) >= 45


def wire(raw, marker):
    return raw.replace(b"{P}", b"/" + marker.encode()).replace(b"{A}", marker.encode() + b".example")


def conf(port, sp, server):
    return (f"stats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ server {server}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; mode http;\n"
            f"  max_request_line 1k; max_header_size 2k; max_headers 20;\n"
            f"  request_timeout 1s; }}\n")


def send_case(port, data, timeout=3.0):
    """Sends DATA in one write on a new connection; reads until the gateway
    closes (EOF or reset) or TIMEOUT passes. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    closed = False
    deadline = time.time() + timeout
    try:
        s.sendall(data)
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not b:
                closed = True
                break
            got += b
    finally:
        s.close()
    return got, closed


def status_of(resp):
    assert resp.startswith(b"HTTP/1.1 "), resp[:200]
    return int(resp.split(b" ", 2)[1])


def check_response(resp, closed, status):
    assert status_of(resp) == status, resp[:300]
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert b"connection: close" in lines, head
    n = int([l for l in lines if l.startswith(b"content-length:")][0].split(b":")[1])
    assert len(body) == n, "exactly one response, nothing after it"
    assert closed, "the gateway must close the connection after an error"


def server_counters(sp):
    srv = stats(sp)["datacenters"][0]["servers"][0]
    return srv["connections_total"], srv["bytes_out"]


@pytest.mark.parametrize("cid,raw,status,marker", CASES, ids=[c[0] for c in CASES])
def test_malformed_request(env, cid, raw, status, marker):
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    gw = env.gateway(conf(port, sp, a.addr), wait=[port])
    resp, closed = send_case(port, wire(raw, marker))
    check_response(resp, closed, status)
    # Nothing was sent to the server, not even a connection opened.
    assert server_counters(sp) == (0, 0)
    c = stats(sp)["counters"]
    assert c["client_errors_total"] == 1
    # Errors the gateway answers itself: http_4xx_total for any 4xx (405,
    # 408, 414, 431 included), http_5xx_other_total for 505.
    assert c["http_4xx_total"] == (1 if status < 500 else 0)
    assert c["http_5xx_other_total"] == (1 if status == 505 else 0)
    assert c["http_502_total"] == c["http_503_total"] == c["http_504_total"] == 0
    # The gateway still serves, and dcsim logged that request but not ours.
    ok = RawHTTP(port)
    st, _, body = ok.request(f"/after-{marker}")
    assert st == 200 and body == f"dc=ams\npath=/after-{marker}\n".encode()
    ok.close()
    a.wait_output(f"req GET /after-{marker} ")
    assert marker not in a.output().replace(f"/after-{marker}", "")
    assert gw.alive()


def test_all_malformed_then_valid_request(env):
    """The whole table on one gateway: exact counters, nothing reached the
    server, and a valid request on a fresh connection still works."""
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    gw = env.gateway(conf(port, sp, a.addr), wait=[port])
    for cid, raw, status, marker in CASES:
        resp, closed = send_case(port, wire(raw, marker))
        try:
            check_response(resp, closed, status)
        except AssertionError as e:
            raise AssertionError(f"case {cid}: {e}") from None
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 0, timeout=5,
               what="every malformed connection closed")
    c = stats(sp)["counters"]
    n4xx = sum(1 for c_ in CASES if c_[2] < 500)
    n400 = sum(1 for c_ in CASES if c_[2] == 400)
    assert n400 >= 45
    assert c["connections_total"] == len(CASES)
    assert c["client_errors_total"] == len(CASES)
    assert c["http_4xx_total"] == n4xx
    assert c["http_5xx_other_total"] == sum(1 for c_ in CASES if c_[2] == 505)
    assert c["http_502_total"] == c["http_503_total"] == c["http_504_total"] == 0
    assert c["bad_session_keys_total"] == 0
    assert server_counters(sp) == (0, 0)
    log = a.output()
    for _, _, _, marker in CASES:
        assert marker not in log, f"{marker} reached the server"
    # A valid request on a fresh connection.
    ok = RawHTTP(port)
    st, _, body = ok.request("/valid-after-all", method="POST", body=b"hello")
    assert st == 200 and body == b"dc=ams\npath=/valid-after-all\n"
    st, _, _ = ok.request("/valid-keepalive")
    assert st == 200
    ok.close()
    a.wait_output("req POST /valid-after-all body=5")
    a.wait_output("req GET /valid-keepalive ")
    assert stats(sp)["counters"]["client_errors_total"] == len(CASES)
    assert gw.alive()


def test_malformed_request_pipelined_after_a_valid_one(env):
    """The valid request is answered and forwarded; the malformed one behind
    it in the same packet gets 400 and never reaches the server."""
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, a.addr), wait=[port])
    resp, closed = send_case(port, b"GET /pipe-ok HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /pipe-bad HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
    first, _, rest = resp.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"dc=ams\npath=/pipe-ok\n")
    check_response(rest[len(b"dc=ams\npath=/pipe-ok\n"):], closed, 400)
    a.wait_output("req GET /pipe-ok ")
    assert "/pipe-bad" not in a.output()
    assert stats(sp)["counters"]["http_4xx_total"] == 1


def test_chunked_error_after_the_head_was_forwarded(env):
    """By design the body is streamed: when the head and the first chunks
    arrive before the bad one, they were already forwarded. The gateway then
    cannot take the request back: it cuts both connections (the server sees
    an incomplete request and never answers it), and the client gets no
    response, only the close. This is what http_request.c scan_body() does when
    s->reached is set."""
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, a.addr), wait=[port])
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b"POST /late-bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n")
    wait_until(lambda: server_counters(sp)[1] > 0, timeout=3, what="head forwarded")
    s.sendall(b"zz\r\n")
    got, closed = b"", False
    s.settimeout(3)
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    s.close()
    assert closed and got == b""
    wait_until(lambda: stats(sp)["datacenters"][0]["servers"][0]["connections_active"] == 0,
               timeout=3, what="server connection closed")
    assert "/late-bad" not in a.output()      # dcsim never saw a whole request
    ok = RawHTTP(port)
    assert ok.request("/after-late")[0] == 200
    ok.close()
