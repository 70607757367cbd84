"""WebSocket through the gateway in http mode: the upgrade, frames of every
length encoding both ways, control frames, over plain TCP and TLS, session
affinity of the upgrade request, and connection accounting."""

import os
import signal
import socket
import ssl
import struct
import time

import pytest

from conftest import RawHTTP, free_port, http_get, stats, wait_until
from helper_tls import TLSRawHTTP, certs, client_ctx, exchange_nonblocking  # noqa: F401
from helper_ws import BINARY, CLOSE, CONT, PING, PONG, TEXT, WSClient, encode_frame


def conf(port, sp, servers, extra="", tls=""):
    srv = "".join(f" server {s};" for s in servers)
    return (f"stats 127.0.0.1:{sp};\ndatacenter ams {{{srv} }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; mode http;{tls} {extra} }}\n")


def connect(port, tls_ctx=None, name="site.test", timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls_ctx:
        s = tls_ctx.wrap_socket(s, server_hostname=name)
    return s


def gateway(env, certs=None, extra=""):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    tls = f" tls cert {certs.site.cert} key {certs.site.key};" if certs else ""
    g = env.gateway(conf(port, sp, [a.addr], extra, tls), wait=[port])
    ctx = client_ctx([certs.site.cert]) if certs else None
    return g, port, sp, ctx


def echo_suite(ws):
    """Frames of every size and kind; each must come back as sent."""
    def roundtrip(opcode, payload):
        ws.send(opcode, payload)
        f = ws.recv_frame()
        assert not f.masked                  # server frames are never masked
        assert (f.fin, f.opcode) == (True, opcode)
        assert f.payload == payload, (opcode, len(payload), len(f.payload))
        return f

    assert roundtrip(TEXT, "héllo wörld".encode()).head_len == 2
    assert roundtrip(TEXT, b"").head_len == 2
    assert roundtrip(BINARY, os.urandom(125)).head_len == 2
    assert roundtrip(BINARY, os.urandom(126)).head_len == 4          # 16-bit length
    assert roundtrip(TEXT, b"t" * 300).head_len == 4
    assert roundtrip(BINARY, os.urandom(65535)).head_len == 4
    assert roundtrip(BINARY, os.urandom(65536)).head_len == 10       # 64-bit length
    assert roundtrip(BINARY, os.urandom(1024 * 1024)).head_len == 10
    # ping gets pong with the same payload
    ws.send(PING, b"are you there")
    f = ws.recv_frame()
    assert (f.fin, f.opcode, f.payload) == (True, PONG, b"are you there")
    # a fragmented message comes back fragment by fragment
    ws.send(TEXT, b"part1-", fin=False)
    ws.send(CONT, b"part2-", fin=False)
    ws.send(PING, b"in between")             # control frames may interleave
    ws.send(CONT, b"part3", fin=True)
    got = [ws.recv_frame() for _ in range(4)]
    assert [(f.fin, f.opcode, f.payload) for f in got] == [
        (False, TEXT, b"part1-"), (False, CONT, b"part2-"), (True, PONG, b"in between"),
        (True, CONT, b"part3")]
    # many frames in flight at once, in one write
    frames = [os.urandom(n) for n in range(0, 3000, 37)]
    ws.s.sendall(b"".join(encode_frame(BINARY, p) for p in frames))
    for p in frames:
        f = ws.recv_frame()
        assert f.opcode == BINARY and f.payload == p
    # close gets close (same code), then the connection ends
    ws.send(CLOSE, struct.pack("!H", 1000) + b"bye")
    f = ws.recv_frame()
    assert f.opcode == CLOSE and f.payload == struct.pack("!H", 1000) + b"bye"
    assert ws.closed_by_peer(5)


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_websocket_echo(env, certs, transport):
    g, port, sp, ctx = gateway(env, certs if transport == "tls" else None)
    ws = WSClient(connect(port, ctx))
    assert ws.upgrade("/ws") == 101, ws.status_line
    assert ws.accepted(), ws.headers
    assert ws.headers.get("x-dc") == "ams"
    assert ws.buf == b""                     # nothing after the 101 head yet
    echo_suite(ws)
    ws.close()
    st = stats(sp)["counters"]
    assert st["connections_total"] == 1 and st["requests_total"] == 1


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_websocket_frames_right_behind_the_upgrade_request(env, certs, transport):
    """Frame bytes in the same write as the upgrade request are tunnel data:
    they reach the server after the upgrade and their echo follows the 101."""
    g, port, sp, ctx = gateway(env, certs if transport == "tls" else None)
    ws = WSClient(connect(port, ctx))
    early = encode_frame(TEXT, b"early bird") + encode_frame(BINARY, b"\x00" * 200)
    assert ws.upgrade("/ws", early=early) == 101 and ws.accepted()
    f = ws.recv_frame()
    assert (f.opcode, f.payload) == (TEXT, b"early bird")
    f = ws.recv_frame()
    assert (f.opcode, f.payload) == (BINARY, b"\x00" * 200)
    ws.send(TEXT, b"later")
    assert ws.recv_frame().payload == b"later"
    ws.close()


def test_upgrade_refused_by_server_keeps_http(env):
    """An upgrade request the server answers with a plain 200 (not /ws) stays
    HTTP: the answer arrives whole and the connection serves more requests."""
    g, port, sp, ctx = gateway(env)
    c = RawHTTP(port)
    status, h, body = c.request("/plain", headers={
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert status == 200 and body == b"dc=ams\npath=/plain\n"
    status, h, body = c.request("/next")
    assert status == 200 and body == b"dc=ams\npath=/next\n"
    c.close()


def test_websocket_after_keepalive_requests_on_same_connection(env, certs):
    g, port, sp, ctx = gateway(env, certs)
    c = TLSRawHTTP(port, ctx, "site.test")
    for i in range(3):
        assert c.request(f"/r{i}")[2] == f"dc=ams\npath=/r{i}\n".encode()
    ws = WSClient(c.s)
    assert ws.upgrade("/ws") == 101 and ws.accepted()
    ws.send(BINARY, b"after keep-alive")
    assert ws.recv_frame().payload == b"after keep-alive"
    ws.close()


def test_websocket_connections_active_drops_after_close(env, certs):
    a = env.dcsim("ams")
    port, tport, sp = free_port(), free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; mode http; }}\n"
                f"listener webs {{ listen 127.0.0.1:{tport}; mode http; "
                f"tls cert {certs.site.cert} key {certs.site.key}; }}\n", wait=[port, tport])
    ctx = client_ctx([certs.site.cert])

    def active():
        return stats(sp)["counters"]["connections_active"]

    base = active()
    socks = []
    for p, transport in ((port, None), (tport, ctx), (port, None)):
        ws = WSClient(connect(p, transport))
        assert ws.upgrade("/ws") == 101
        ws.send(TEXT, b"x")
        assert ws.recv_frame().payload == b"x"
        socks.append(ws)
    wait_until(lambda: active() == base + 3, 3, what="three WebSockets open")
    # a clean close handshake
    ws = socks.pop()
    ws.send(CLOSE, struct.pack("!H", 1000))
    assert ws.recv_frame().opcode == CLOSE
    assert ws.closed_by_peer(5)
    ws.close()
    wait_until(lambda: active() == base + 2, 3, what="the closed WebSocket to be gone")
    # the client just goes away, over TLS and plain
    for ws in socks:
        ws.close()
    wait_until(lambda: active() == base, 3, what="connections_active back to its base")


def test_websocket_server_going_away_closes_client(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    base = stats(sp)["counters"]["connections_active"]
    ws = WSClient(connect(port))
    assert ws.upgrade("/ws") == 101
    ws.send(TEXT, b"hi")
    assert ws.recv_frame().payload == b"hi"
    a.stop()
    assert ws.closed_by_peer(5)
    ws.close()
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == base, 3,
               what="connections_active back to its base")


def affinity_conf(port, sp, a, b, prio_a, prio_b):
    return (f"stats 127.0.0.1:{sp};\n"
            f"datacenter a {{ priority {prio_a}; server {a.addr}; }}\n"
            f"datacenter b {{ priority {prio_b}; server {b.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; mode http; session cookie sid; }}\n")


def test_websocket_upgrade_follows_session_affinity(env):
    a = env.dcsim("dc-a", extra=["--log"])
    b = env.dcsim("dc-b", extra=["--log"])
    port, sp = free_port(), free_port()
    # b preferred: the session "alice" is given to b.
    g = env.gateway(affinity_conf(port, sp, a, b, 2, 1), wait=[port])
    status, _, body = http_get(port, "/first", headers={"Cookie": "sid=alice"})
    assert status == 200 and body == b"dc=dc-b\npath=/first\n"
    # Now a is preferred for new sessions; alice stays on b.
    with open(g.conf, "w") as f:
        f.write(affinity_conf(port, sp, a, b, 1, 2))
    g.send(signal.SIGHUP)
    g.wait_output("configuration reloaded", timeout=5)
    assert http_get(port, "/new", headers={"Cookie": "sid=bob"})[2] == b"dc=dc-a\npath=/new\n"
    assert http_get(port, "/again", headers={"Cookie": "sid=alice"})[2] == \
        b"dc=dc-b\npath=/again\n"

    def dc_requests():
        return {d["name"]: d["requests_total"] for d in stats(sp)["datacenters"]}

    before = dc_requests()
    ws = WSClient(connect(port))
    assert ws.upgrade("/ws", headers={"Cookie": "theme=dark; sid=alice"}) == 101
    assert ws.accepted()
    assert ws.headers.get("x-dc") == "dc-b"
    ws.send(TEXT, b"where am I")
    assert ws.recv_frame().payload == b"where am I"
    after = dc_requests()
    assert after["b"] == before["b"] + 1 and after["a"] == before["a"]
    ws.send(CLOSE, struct.pack("!H", 1000))
    assert ws.recv_frame().opcode == CLOSE
    ws.close()
    wait_until(lambda: "req GET /ws" in b.output(), 2, what="the upgrade in dc-b's log")
    assert "req GET /ws" not in a.output()
    # An upgrade for a new session goes where new sessions go.
    ws = WSClient(connect(port))
    assert ws.upgrade("/ws", headers={"Cookie": "sid=carol"}) == 101
    assert ws.headers.get("x-dc") == "dc-a"
    ws.close()
    # and carol's next plain request stays with her datacenter
    assert http_get(port, "/c", headers={"Cookie": "sid=carol"})[2] == b"dc=dc-a\npath=/c\n"


def test_websocket_upgrade_session_without_reload(env):
    """The first request of a session is the upgrade itself: it writes the
    session's affinity, and later plain requests of that session follow it."""
    a = env.dcsim("dc-a")
    b = env.dcsim("dc-b")
    port, sp = free_port(), free_port()
    env.gateway(affinity_conf(port, sp, a, b, 2, 1), wait=[port])
    ws = WSClient(connect(port))
    assert ws.upgrade("/ws", headers={"Cookie": "sid=dave"}) == 101
    assert ws.headers.get("x-dc") == "dc-b"
    ws.close()
    for i in range(3):
        assert http_get(port, f"/d{i}", headers={"Cookie": "sid=dave"})[2] == \
            f"dc=dc-b\npath=/d{i}\n".encode()
    st = stats(sp)["counters"]
    assert st["affinity_misses_total"] >= 1 and st["affinity_hits_total"] >= 3


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_websocket_bulk_both_ways_at_once(env, certs, transport):
    """16 MiB of frames sent while their echoes are read: the tunnel applies
    backpressure both ways without losing, reordering or stalling."""
    g, port, sp, ctx = gateway(env, certs if transport == "tls" else None)
    ws = WSClient(connect(port, ctx))
    assert ws.upgrade("/ws") == 101
    payloads = [os.urandom(65536 - 7 * i) for i in range(256)]
    wire = b"".join(encode_frame(BINARY, p) for p in payloads)
    expected = b"".join(b"\x82\x7f" + struct.pack("!Q", len(p)) + p if len(p) > 0xffff
                        else b"\x82\x7e" + struct.pack("!H", len(p)) + p for p in payloads)
    sent, got = exchange_nonblocking(ws.s, wire, len(expected))
    assert sent == len(wire)
    assert len(got) == len(expected) and bytes(got) == expected
    ws.s.setblocking(True)
    ws.s.settimeout(5)
    ws.send(CLOSE, struct.pack("!H", 1000))
    assert ws.recv_frame().opcode == CLOSE
    ws.close()


def test_tunnelled_server_connection_is_not_pooled(env):
    """A server connection that became a WebSocket never serves a later plain
    request, and plain requests keep working around WebSockets."""
    g, port, sp, ctx = gateway(env)
    c = RawHTTP(port)
    for n in range(5):
        assert c.request(f"/before{n}")[2] == f"dc=ams\npath=/before{n}\n".encode()
        ws = WSClient(connect(port))
        assert ws.upgrade("/ws") == 101
        ws.send(TEXT, b"r%d" % n)
        assert ws.recv_frame().payload == b"r%d" % n
        # plain requests while the WebSocket is open ...
        for i in range(3):
            assert c.request(f"/during{i}")[2] == f"dc=ams\npath=/during{i}\n".encode()
        ws.send(CLOSE, struct.pack("!H", 1000))
        assert ws.recv_frame().opcode == CLOSE
        ws.close()
        # ... and after it closed
        for i in range(3):
            assert http_get(port, f"/after{i}")[2] == f"dc=ams\npath=/after{i}\n".encode()
    c.close()
