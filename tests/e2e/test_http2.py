"""HTTP/2 from clients: ALPN h2 over TLS and prior-knowledge h2c, streams
routed like HTTP/1.1 requests (affinity, failover), the translation to
HTTP/1.1 servers (trailers, cookies, forwarding headers), flow control,
limits and floods answered with the right frame, GOAWAY on drain and
reload, counters; HTTP/2 towards servers (gRPC-style trailers)."""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import hpack
import pytest

from conftest import HalfSlow, dc_state, free_port, http_get, stats, wait_until
from helper_h2 import (CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
                       FLOW_CONTROL_ERROR, GOAWAY, HEADERS, NO_ERROR, PING, PROTOCOL_ERROR,
                       REFUSED_STREAM, SETTINGS, WINDOW_UPDATE, H1Server, H2Client, H2Server,
                       frame, goaway_of, read_frames, resets_of, status, tls_socket)
from helper_tls import certs, make_certs  # noqa: F401

FAST = "check http /health interval 100ms timeout 100ms rise 1 fall 1;"
SLOW = "check tcp interval 100ms timeout 100ms rise 1 fall 1;"   # for servers that answer late


def gateway(env, dcs, listener="", tls=None, extra="", sess="session cookie sid;", check=FAST):
    """A gateway in front of DCS [(name, priority, [addr])]; returns (port, stats port)."""
    port, sp = free_port(), free_port()
    blocks = "".join(
        f"datacenter {n} {{ priority {p}; {''.join(f'server {a}; ' for a in addrs)} "
        f"{check} }}\n" for n, p, addrs in dcs)
    tls_line = f"tls cert {tls.cert} key {tls.key};" if tls else ""
    env.gateway(f"stats 127.0.0.1:{sp};\n{extra}\n{blocks}"
                f"listener web {{ listen 127.0.0.1:{port}; mode http; {tls_line} {sess} "
                f"{listener} }}\n", wait=[port])
    return port, sp


def h2c(env, **kw):
    ams = env.dcsim("ams")
    port, sp = gateway(env, [("ams", 1, [ams.addr])], listener="http2 on;", **kw)
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    return port, sp


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=20)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def gateway_pid(env):
    return [p for p in env.procs if p.name == "edgegate"][0].pid


# ---- negotiation ----

def test_curl_http2_over_tls_and_http1_on_the_same_listener(env, certs):
    ams = env.dcsim("ams")
    port, sp = gateway(env, [("ams", 1, [ams.addr])], tls=certs.site)
    r = curl("-k", "--http2", "-w", "%{http_version}", "--resolve",
             f"site.test:{port}:127.0.0.1", f"https://site.test:{port}/over-tls")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "dc=ams\npath=/over-tls\n2"
    r = curl("-k", "--http1.1", "-w", "%{http_version}", f"https://127.0.0.1:{port}/h1")
    assert r.stdout == "dc=ams\npath=/h1\n1.1"
    st = stats(sp)
    assert st["protocols"]["h2"] == {"connections_total": 1, "requests_total": 1,
                                     "streams_active": 0}
    assert st["protocols"]["h1"]["requests_total"] == 1


def test_alpn_offers_h2_on_tls_listeners_unless_off(env, certs):
    from helper_tls import s_client
    ams = env.dcsim("ams")
    port, _ = gateway(env, [("ams", 1, [ams.addr])], tls=certs.site)
    rc, out = s_client(port, "-alpn", "h2,http/1.1", servername="site.test", stdin_delay=0)
    assert rc == 0 and "ALPN protocol: h2" in out, out
    off, _ = gateway(env, [("ams", 1, [ams.addr])], tls=certs.site, listener="http2 off;")
    rc, out = s_client(off, "-alpn", "h2,http/1.1", servername="site.test", stdin_delay=0)
    assert rc == 0 and "ALPN protocol: http/1.1" in out, out


def test_h2c_prior_knowledge_next_to_http1(env):
    port, sp = h2c(env)
    r = curl("--http2-prior-knowledge", "-w", "%{http_version}", f"http://127.0.0.1:{port}/pk")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "dc=ams\npath=/pk\n2"
    status_, _, body = http_get(port, "/plain")
    assert (status_, body) == (200, b"dc=ams\npath=/plain\n")


def test_cleartext_listener_without_http2_is_http1_only(env):
    ams = env.dcsim("ams")
    port, _ = gateway(env, [("ams", 1, [ams.addr])])
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert c.recv(100).startswith(b"HTTP/1.1 505")


# ---- streams as requests ----

def test_100_streams_with_affinity_per_stream(env):
    ams, fra = env.dcsim("ams"), env.dcsim("fra")
    port, sp = gateway(env, [("ams", 1, [ams.addr]), ("fra", 1, [fra.addr])],
                       listener="http2 on;")
    wait_until(lambda: dc_state(sp, "ams")["healthy"] and dc_state(sp, "fra")["healthy"],
               what="both up")
    # Sessions 0..49 are made while only fra answers, 50..99 while only ams does.
    ams.send(signal.SIGSTOP)
    wait_until(lambda: not dc_state(sp, "ams")["healthy"], what="ams down")
    c = H2Client(port)
    for i in range(50):
        assert c.get("/", [("cookie", f"sid=s{i}")])["data"].startswith(b"dc=fra")
    ams.send(signal.SIGCONT)
    fra.send(signal.SIGSTOP)
    wait_until(lambda: not dc_state(sp, "fra")["healthy"] and dc_state(sp, "ams")["healthy"],
               what="fra down, ams up")
    for i in range(50, 100):
        assert c.get("/", [("cookie", f"sid=s{i}")])["data"].startswith(b"dc=ams")
    fra.send(signal.SIGCONT)
    wait_until(lambda: dc_state(sp, "fra")["healthy"], what="fra up")
    # 100 concurrent streams on one connection, each with its own session.
    c = H2Client(port)
    sids = {c.request(f"/s{i}", [("cookie", f"a=1; sid=s{i}")]): i for i in range(100)}
    for sid, i in sids.items():
        st = c.response(sid)
        assert status(st) == 200
        want = "fra" if i < 50 else "ams"
        assert st["data"] == f"dc={want}\npath=/s{i}\n".encode(), (i, st["data"])
    # nghttp: 100 concurrent streams on one connection, all answered.
    r = subprocess.run(["nghttp", "-n", "-s", "-m", "100", "-H", "cookie: sid=s7",
                        f"http://127.0.0.1:{port}/n"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    codes = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s", r.stdout, re.M)
    assert codes == ["200"] * 100, r.stdout[-2000:]
    assert stats(sp)["counters"]["h2_requests_total"] >= 300


def test_h2load_with_a_datacenter_killed_costs_no_stream(env):
    ams, fra = env.dcsim("ams"), env.dcsim("fra")
    port, sp = gateway(env, [("ams", 1, [ams.addr]), ("fra", 2, [fra.addr])],
                       listener="http2 on;", sess="")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    load = subprocess.Popen(["h2load", "-n", "6000", "-c", "10", "-m", "10", "--rps", "200",
                             f"http://127.0.0.1:{port}/load"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: stats(sp)["counters"]["h2_requests_total"] > 1000, timeout=10,
               what="load running")
    ams.stop(signal.SIGKILL)
    out, _ = load.communicate(timeout=60)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert m, out
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    assert (started, done, ok, failed, errored, timeout) == (total, total, total, 0, 0, 0), out
    assert "status codes: 6000 2xx" in out, out
    # fra took over (by failover, or routed there once ams was marked down).
    assert dc_state(sp, "fra")["requests_total"] > 0
    st = stats(sp)["counters"]
    print(f"h2load: {started} started, {done} done, {failed} failed; "
          f"retries {st['retries_total']}, failovers {st['failovers_total']}")


def test_translation_to_http1_trailers_cookies_forwarding(env):
    h1 = H1Server(free_port(), body=b"response body")
    h1.start()
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{h1.port}"])], listener="http2 on;",
                       check=SLOW)
    c = H2Client(port)
    sid = c.request("/up", [("cookie", "a=1"), ("x-keep", "yes"), ("cookie", "sid=abc"),
                            ("te", "trailers"), ("x-forwarded-for", "10.0.0.1")],
                    body=None, method="POST", end=False, authority="site.test:8443")
    c.c.send_data(sid, b"hello ")
    c.c.send_data(sid, b"world")
    c.c.send_headers(sid, [("x-sum", "42"), ("authorization", "secret")], end_stream=True)
    c.flush()
    st = c.response(sid)
    assert status(st) == 200
    assert st["data"] == b"response body"
    assert dict(st["trailers"]) == {"x-checksum": "abc"}
    hdrs = dict(st["headers"])
    for hop in ("connection", "keep-alive", "transfer-encoding"):
        assert hop not in hdrs
    req = h1.requests[-1]
    head = req["head"]
    assert head.startswith("POST /up HTTP/1.1\r\n"), head
    assert req["headers"]["host"] == ["site.test:8443"]
    assert req["headers"]["cookie"] == ["a=1; sid=abc"]
    assert req["headers"]["transfer-encoding"] == ["chunked"]
    assert "te" not in req["headers"]
    assert req["headers"]["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"]
    assert req["headers"]["x-forwarded-proto"] == ["http"]
    assert req["body"] == b"hello world"
    assert req["trailers"] == ["x-sum: 42"]   # no credentials in a trailer
    # A length known up front goes out as Content-Length, without trailers.
    st = c.get("/len", [("content-length", "3")], body=b"abc")
    req = h1.requests[-1]
    assert req["headers"]["content-length"] == ["3"] and req["body"] == b"abc"
    assert "transfer-encoding" not in req["headers"]
    # A POST without a body says so.
    c.get("/empty", method="POST")
    assert h1.requests[-1]["headers"]["content-length"] == ["0"]
    h1.stop()


def test_large_bodies_both_ways_with_bounded_buffers(env):
    body = os.urandom(3 << 20)
    h1 = H1Server(free_port(), body=body, trailers=None)
    h1.start()
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{h1.port}"])], listener="http2 on;",
                       check=SLOW)
    c = H2Client(port, timeout=20)
    upload = os.urandom(2 << 20)
    st = c.get("/big", body=upload)
    assert status(st) == 200 and st["data"] == body
    assert h1.requests[-1]["body"] == upload
    # A client that does not read: the gateway buffers a window's worth.
    slow = H2Client(port, timeout=20)
    sid = slow.request("/big")
    time.sleep(1)
    assert stats(sp)["counters"]["buffers_in_use"] <= 8
    slow.wait(lambda: slow.streams[sid]["ended"], "the whole body")
    assert slow.streams[sid]["data"] == body
    c.close()
    slow.close()
    wait_until(lambda: stats(sp)["counters"]["buffers_in_use"] == 0, what="buffers back")
    h1.stop()


def test_concurrent_uploads_share_the_connection_window(env):
    """100 uploads on one connection, each over the replay limit: bytes kept
    for replays must not hold the connection's window (they would starve
    one another)."""
    port, sp = h2c(env)
    data = env.write("upload", "x" * 300000)
    r = subprocess.run(["h2load", "-n", "300", "-c", "1", "-m", "100", "-d", data,
                        f"http://127.0.0.1:{port}/up"], capture_output=True, text=True,
                       timeout=60)
    assert "status codes: 300 2xx" in r.stdout, r.stdout
    wait_until(lambda: stats(sp)["counters"]["buffers_in_use"] == 0, what="buffers back")


def test_idle_connection_holds_no_buffer(env):
    port, sp = h2c(env)
    c = H2Client(port)
    assert status(c.get("/")) == 200
    wait_until(lambda: stats(sp)["counters"]["buffers_in_use"] == 0, what="buffers given back")
    assert stats(sp)["counters"]["connections_active"] == 1


def test_errors_are_responses_on_the_stream(env):
    port, sp = h2c(env, extra="", sess="session header X-Session;")
    c = H2Client(port)
    st = c.get("/", [("x-session", "k" * 300)])
    assert status(st) == 400
    st = c.get("/", method="CONNECT")
    assert st["reset"] is not None or status(st) == 405
    assert status(c.get("/after")) == 200   # the connection goes on


def test_no_datacenter_holds_then_503(env):
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{free_port()}"])],
                       listener="http2 on; hold_timeout 300ms;")
    c = H2Client(port)
    t0 = time.time()
    st = c.get("/")
    assert status(st) == 503 and dict(st["headers"])["retry-after"] == "1"
    assert time.time() - t0 >= 0.25


# ---- hedging and slow senders, as in http mode ----

def h2_p99_through(env, hedge, per_client):
    """p99 of h2 streams (4 connections, one stream at a time each) through a
    gateway whose nearest datacenter answers every other request 2 s late."""
    ams, fra = HalfSlow("ams"), env.dcsim("fra")
    port, sp = gateway(env, [("ams", 1, [ams.addr]), ("fra", 2, [fra.addr])],
                       listener=f"http2 on; hedge_after {hedge};", sess="",
                       extra="retry_budget 60;")
    wait_until(lambda: dc_state(sp, "ams")["healthy"] and dc_state(sp, "fra")["healthy"],
               what="both up")
    took = []

    def client(k):
        c = H2Client(port, timeout=10)
        for i in range(per_client):
            t0 = time.time()
            assert status(c.get(f"/{k}/{i}")) == 200
            took.append(time.time() - t0)
        c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    took.sort()
    return took[int(len(took) * 0.99) - 1], len(took), stats(sp)["counters"]


def test_hedging_cuts_the_tail_of_h2_streams(env):
    p99_off, n_off, _ = h2_p99_through(env, "0", 8)
    p99_on, n_on, counters = h2_p99_through(env, "50ms", 25)
    print(f"h2 streams: p99 without hedging {p99_off * 1000:.0f} ms, with hedge_after 50ms "
          f"{p99_on * 1000:.0f} ms over {n_on} requests; hedges {counters['hedges_total']}, "
          f"won {counters['hedges_won_total']}")
    assert (n_off, n_on) == (32, 100)
    assert p99_off > 1.5
    assert p99_on < 0.1
    assert counters["hedges_won_total"] > 0


def silent_server():
    """A server that takes connections and requests and never answers."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def run(kept=[]):
        while True:
            kept.append(ls.accept()[0])

    threading.Thread(target=run, daemon=True).start()
    return f"127.0.0.1:{ls.getsockname()[1]}"


def test_a_hedged_stream_sends_its_body_and_trailers_whole(env):
    fra = H1Server(free_port(), body=b"from fra", trailers=None)
    fra.start()
    port, sp = gateway(env, [("ams", 1, [silent_server()]), ("fra", 2, [f"127.0.0.1:{fra.port}"])],
                       listener="http2 on; hedge_after 50ms;", sess="", check=SLOW)
    wait_until(lambda: dc_state(sp, "ams")["healthy"] and dc_state(sp, "fra")["healthy"],
               what="both up")
    c = H2Client(port)
    # Chunked towards ams as the DATA came; framed anew for the hedge.
    sid = c.request("/chunked", [("idempotency-key", "k1")], method="PUT", end=False)
    for part in (b"hello ", b"world"):
        c.c.send_data(sid, part)
        c.flush()
        time.sleep(0.02)
    c.c.send_headers(sid, [("x-sum", "42")], end_stream=True)
    c.flush()
    st = c.response(sid)
    assert (status(st), st["data"]) == (200, b"from fra")
    assert fra.requests[-1]["body"] == b"hello world"
    assert fra.requests[-1]["trailers"] == ["x-sum: 42"]
    st = c.get("/len", [("content-length", "3")], body=b"abc", method="PUT")
    assert status(st) == 200 and fra.requests[-1]["body"] == b"abc"
    counters = stats(sp)["counters"]
    assert (counters["hedges_total"], counters["hedges_won_total"]) == (2, 2)
    fra.stop()


def test_a_stream_below_body_min_rate_gets_408_next_to_a_normal_one(env):
    ams = env.dcsim("ams")
    port, sp = gateway(env, [("ams", 1, [ams.addr])], listener="http2 on; body_min_rate 1k;")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    c = H2Client(port, timeout=10)
    slow = c.request("/up", [("content-length", "100000")], method="POST", end=False)
    t0 = time.time()
    fast = []
    while time.time() - t0 < 8 and c.streams[slow]["headers"] is None \
            and c.streams[slow]["reset"] is None:
        c.c.send_data(slow, b"x")
        c.flush()
        t1 = time.time()
        assert status(c.get(f"/ok{len(fast)}")) == 200   # the same connection goes on
        fast.append(time.time() - t1)
        time.sleep(0.4)
    took = time.time() - t0
    st = c.response(slow)
    print(f"slow stream answered {status(st)} after {took:.1f} s; {len(fast)} other streams "
          f"meanwhile, slowest {max(fast) * 1000:.0f} ms")
    assert status(st) == 408
    assert 1.5 < took < 5, took
    assert max(fast) < 0.2
    c.wait(lambda: c.streams[slow]["reset"] is not None, "the slow stream reset")
    assert status(c.get("/after")) == 200
    counters = stats(sp)["counters"]
    assert counters["http_4xx_total"] == 1
    assert counters["client_errors_total"] == 1


# ---- limits and floods ----

def flood_case(env, send, expect_code):
    port, sp = h2c(env)
    pid = gateway_pid(env)
    before = rss_kb(pid)
    for _ in range(3):
        c = H2Client(port)
        send(c)
        frames = c.read_frames()
        assert goaway_of(frames) is not None, frames[-5:]
        assert goaway_of(frames)[0] == expect_code, goaway_of(frames)
        c.close()
    assert status(H2Client(port).get("/after")) == 200
    assert rss_kb(pid) - before < 20000, (before, rss_kb(pid))
    return sp


def test_rapid_reset_gets_goaway(env):
    def send(c):
        for _ in range(500):
            sid = c.c.get_next_available_stream_id()
            c.c.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                   (":authority", "t")])
            c.c.reset_stream(sid, 8)
        c.flush()
    sp = flood_case(env, send, ENHANCE_YOUR_CALM)
    st = stats(sp)["counters"]
    assert st["h2_floods_total"] >= 3 and st["h2_resets_client_total"] >= 600


def test_continuation_flood_gets_goaway(env):
    def send(c):
        e = hpack.Encoder()
        data = frame(HEADERS, 0, 1, e.encode([(":method", "GET"), (":path", "/"),
                                              (":scheme", "http"), (":authority", "t")]))
        for i in range(200):
            data += frame(CONTINUATION, 0, 1, e.encode([(f"x-a{i}", "b" * 100)]))
        try:
            c.send_raw(data)
        except OSError:
            pass
    flood_case(env, send, ENHANCE_YOUR_CALM)


@pytest.mark.parametrize("what", ["settings", "ping", "empty data"])
def test_control_frame_floods_get_goaway(env, what):
    def send(c):
        if what == "settings":
            data = frame(SETTINGS, 0, 0) * 3000
        elif what == "ping":
            data = frame(PING, 0, 0, b"12345678") * 3000
        else:
            sid = c.request("/", body=b"", end=False)
            data = frame(DATA, 0, sid) * 3000
        try:
            c.send_raw(data)
        except OSError:
            pass
    flood_case(env, send, ENHANCE_YOUR_CALM)


def test_oversized_header_list_gets_431(env):
    port, sp = h2c(env)
    c = H2Client(port)
    st = c.get("/", [(f"x-big{i}", "v" * 1000) for i in range(30)])
    assert status(st) == 431
    assert status(c.get("/after")) == 200


def test_bad_preface_gets_goaway(env, certs):
    port, sp = h2c(env)
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 30)
    data = c.recv(1000)
    assert data[3] == GOAWAY and int.from_bytes(data[13:17], "big") == PROTOCOL_ERROR, data
    ams = env.dcsim("ams2")
    tport, _ = gateway(env, [("ams", 1, [ams.addr])], tls=certs.site)
    s = tls_socket(tport)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    frames = read_frames(s)
    assert goaway_of(frames)[0] == PROTOCOL_ERROR, frames
    assert status(H2Client(port).get("/after")) == 200
    assert stats(sp)["counters"]["h2_goaway_error_total"] >= 1


def test_stream_id_reuse_gets_goaway(env):
    port, sp = h2c(env)
    c = H2Client(port)
    sid = c.request("/")
    c.response(sid)
    c.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, sid, hpack.Encoder().encode(
        [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")])))
    assert goaway_of(c.read_frames())[0] == PROTOCOL_ERROR
    assert status(H2Client(port).get("/after")) == 200


def test_window_overflow_gets_flow_control_error(env):
    port, sp = h2c(env)
    c = H2Client(port)
    c.send_raw(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)))
    assert goaway_of(c.read_frames())[0] == FLOW_CONTROL_ERROR
    c = H2Client(port)
    sid = c.request("/", body=b"", end=False)
    c.send_raw(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 0x7fffffff)))
    assert resets_of(c.read_frames()) == {sid: FLOW_CONTROL_ERROR}
    assert status(H2Client(port).get("/after")) == 200
    assert stats(sp)["counters"]["h2_resets_protocol_total"] >= 1


def test_streams_over_the_limit_are_refused(env):
    ams = env.dcsim("ams", delay="300ms")
    port, sp = gateway(env, [("ams", 1, [ams.addr])], listener="http2 on;", check=SLOW)
    c = H2Client(port)
    e = hpack.Encoder()
    data = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, e.encode(
        [(":method", "GET"), (":path", f"/{i}"), (":scheme", "http"), (":authority", "t")]))
        for i in range(120))
    c.send_raw(data)
    frames = c.read_frames(timeout=2)
    refused = [s for s, code in resets_of(frames).items() if code == REFUSED_STREAM]
    answered = {s for t, f, s, _ in frames if t == HEADERS}
    assert len(refused) == 20 and len(answered) == 100, (len(refused), len(answered))
    assert stats(sp)["counters"]["h2_resets_refused_total"] == 20


# ---- drain and reload ----

def test_reload_and_drain_send_graceful_goaway(env):
    """The stream in flight finishes, the GOAWAY names it, the connection
    closes after it; with SIGTERM the process then exits."""
    ams = env.dcsim("ams", delay="500ms")
    port, sp = gateway(env, [("ams", 1, [ams.addr])], listener="http2 on;", check=SLOW)
    g = [p for p in env.procs if p.name == "edgegate"][0]
    for sig in (signal.SIGHUP, signal.SIGTERM):
        c = H2Client(port)
        assert status(c.get("/")) == 200
        sent = dc_state(sp, "ams")["requests_total"]
        sid = c.request("/slow")
        wait_until(lambda: dc_state(sp, "ams")["requests_total"] > sent, what="the stream at ams")
        t0 = time.time()
        g.send(sig)
        frames = c.read_frames(timeout=5)
        assert time.time() - t0 < 3, "the connection stays open"
        assert goaway_of(frames) == (NO_ERROR, sid), frames
        assert any(t == DATA and s == sid and f & END_STREAM for t, f, s, _ in frames), frames
    assert g.p.wait(10) == 0
    assert stats_after_exit_ok(g)


def stats_after_exit_ok(g):
    return "drain timeout" not in g.output()


# ---- HTTP/2 towards servers ----

def grpc_handler(headers, body, trailers):
    h = dict(headers)
    reply = b"\0\0\0\0\x03" + b"ok!"
    return ([(":status", "200"), ("content-type", "application/grpc"),
             ("x-got-te", h.get("te", "-")), ("x-got-xff", h.get("x-forwarded-for", "-")),
             ("x-got-authority", h.get(":authority", "-"))],
            reply, [("grpc-status", "0"), ("grpc-message", f"done {h[':path']}")])


def grpc_call(c, path, body=b"\0\0\0\0\x05hello"):
    return c.request(path, [("content-type", "application/grpc"), ("te", "trailers")],
                     body=body, method="POST")


def test_grpc_through_an_h2_server_keeps_trailers_and_multiplexes(env):
    srv = H2Server(free_port(), grpc_handler)
    srv.start()
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{srv.port} h2"])], listener="http2 on;",
                       check=SLOW, sess="")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    c = H2Client(port)
    st = c.response(grpc_call(c, "/pkg.Greeter/Hello"))
    h = dict(st["headers"])
    assert (h[":status"], h["content-type"]) == ("200", "application/grpc")
    assert (h["x-got-te"], h["x-got-xff"], h["x-got-authority"]) == ("trailers", "127.0.0.1",
                                                                     "test")
    assert st["data"] == b"\0\0\0\0\x03ok!"
    assert dict(st["trailers"]) == {"grpc-status": "0", "grpc-message": "done /pkg.Greeter/Hello"}
    assert srv.requests[-1]["body"] == b"\0\0\0\0\x05hello"
    # 50 concurrent calls share the server connection.
    sids = [grpc_call(c, f"/pkg.Greeter/M{i}") for i in range(50)]
    for i, sid in enumerate(sids):
        st = c.response(sid)
        assert dict(st["trailers"])["grpc-message"] == f"done /pkg.Greeter/M{i}"
    assert srv.connections == 1
    assert stats(sp)["counters"]["h2_upstream_streams_total"] == 51
    # An HTTP/1.1 request is not sent to an HTTP/2 server, and costs it nothing.
    assert http_get(port, "/h1")[0] == 502
    assert dc_state(sp, "ams")["servers"][0]["up"]
    srv.stop()


def test_h2_server_over_tls_with_alpn(env, certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.site.cert, certs.site.key)
    ctx.set_alpn_protocols(["h2"])
    srv = H2Server(free_port(), grpc_handler, tls_ctx=ctx)
    srv.start()
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{srv.port} tls h2"])],
                       listener="http2 on;", check=SLOW, sess="")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    c = H2Client(port)
    st = c.response(grpc_call(c, "/pkg.Greeter/Tls"))
    assert dict(st["trailers"])["grpc-status"] == "0"
    assert dict(st["headers"])["x-got-te"] == "trailers"
    srv.stop()


def test_h2_server_fails_over_only_before_the_response_head(env):
    from helper_h2 import RESET
    calls = []

    def flaky(headers, body, trailers):
        path = dict(headers)[":path"]
        calls.append(path)
        if path.startswith("/refused"):
            return RESET(REFUSED_STREAM)
        if path.startswith("/reset-before"):
            return RESET(2)
        return [(":status", "200")], RESET(2), None   # head, then a reset
    ams = H2Server(free_port(), flaky)
    ams.start()
    fra = env.dcsim("fra")
    port, sp = gateway(env, [("ams", 1, [f"127.0.0.1:{ams.port} h2"]), ("fra", 2, [fra.addr])],
                       listener="http2 on; retries 2;", check=SLOW, sess="")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    c = H2Client(port)
    # Refused: not processed, so even a POST goes to the next datacenter (HTTP/1.1 there).
    st = c.get("/refused", body=b"data")
    assert status(st) == 200 and st["data"] == b"dc=fra\npath=/refused\n"
    # Reset before the head: a GET is replayed.
    st = c.get("/reset-before")
    assert status(st) == 200 and st["data"].startswith(b"dc=fra")
    # Reset after the head: the client's stream is reset, never replayed.
    n = len(calls)
    st = c.get("/reset-after")
    assert st["reset"] is not None
    assert len(calls) == n + 1
    assert stats(sp)["counters"]["h2_resets_internal_total"] >= 1
    ams.stop()
