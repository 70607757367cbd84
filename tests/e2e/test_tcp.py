"""tcp mode: integrity, half-close, backpressure and connect-failover."""

import hashlib
import os
import socket
import threading

import pytest

from conftest import free_port, stats, wait_until


def conf(port, sp, servers, extra=""):
    srv = "".join(f" server {s};" for s in servers)
    return (f"stats 127.0.0.1:{sp};\ndatacenter echo {{{srv} }}\n"
            f"listener raw {{ listen 127.0.0.1:{port}; mode tcp; retries 3; {extra} }}\n")


def pump(port, data, shut=True, timeout=30):
    """Sends DATA, half-closes, returns everything received until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = bytearray()

    def reader():
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return
                got.extend(b)
        except OSError:
            return  # closed by the main thread after its timeout

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    return bytes(got)


def test_16mib_random_both_ways_intact(env):
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [e.addr]), wait=[port])
    data = os.urandom(16 * 1024 * 1024)
    got = pump(port, data)
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_half_close_passes_through(env):
    """Client shuts its write side: it still gets every echoed byte, then EOF."""
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [e.addr]), wait=[port])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"hello before half-close")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    assert got == b"hello before half-close"
    s.close()


def test_server_half_close_reaches_client(env):
    """Server closes first: the client sees EOF but may keep sending."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [f"127.0.0.1:{srv.getsockname()[1]}"]), wait=[port])
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"ping")
    a, _ = srv.accept()
    assert a.recv(4) == b"ping"
    a.sendall(b"bye")
    a.shutdown(socket.SHUT_WR)
    assert c.recv(10) == b"bye"
    assert c.recv(10) == b""            # EOF passed on
    c.sendall(b"still talking")         # our half is still open
    got = b""
    a.settimeout(5)
    while len(got) < 13:
        got += a.recv(100)
    assert got == b"still talking"
    c.close()
    assert a.recv(10) == b""
    a.close()
    srv.close()


def test_connect_failover_replays_first_bytes(env):
    e = env.dcsim("echo", mode="echo")
    dead1, dead2 = free_port(), free_port()
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [f"127.0.0.1:{dead1}", f"127.0.0.1:{dead2}", e.addr]),
                wait=[port])
    for i in range(20):
        assert pump(port, b"first bytes %d" % i) == b"first bytes %d" % i
    st = stats(sp)
    assert st["counters"]["client_errors_total"] == 0


def test_reset_before_first_byte_is_replayed(env):
    """A server that accepts then resets without a word: the bytes go to the next one."""
    bad = socket.socket()
    bad.bind(("127.0.0.1", 0))
    bad.listen()
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter a {{ server 127.0.0.1:{bad.getsockname()[1]}; }}\n"
                f"datacenter b {{ priority 2; server {e.addr}; }}\n"
                f"listener raw {{ listen 127.0.0.1:{port}; mode tcp; }}\n", wait=[port])
    result = {}
    t = threading.Thread(target=lambda: result.update(got=pump(port, b"replay me", shut=False,
                                                             timeout=5)))
    t.start()
    conn, _ = bad.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.recv(100)
    conn.close()  # RST: linger 0
    t.join(6)
    assert result["got"].startswith(b"replay me")
    bad.close()


def test_backpressure_bounds_memory(env):
    """A client that does not read: the gateway stops reading the server."""
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [e.addr]), wait=[port])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chunk = b"x" * 65536
    s.setblocking(False)
    sent = 0
    for _ in range(2000):
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            break
    # Everything stalls once socket buffers fill: the gateway holds at most
    # its two buffers for this connection.
    wait_until(lambda: stats(sp)["counters"]["buffers_in_use"] <= 2, what="bounded buffers")
    assert sent < 2000 * 65536
    s.close()


def test_idle_connection_holds_no_buffer(env):
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [e.addr]), wait=[port])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"x" * 1000)
    got = b""
    while len(got) < 1000:
        got += s.recv(4096)
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 1, what="connection")
    assert stats(sp)["counters"]["buffers_in_use"] == 0
    s.close()


# ---- the splice path (pump.h): plain sockets, past TCP_SPLICE_AFTER (64 KiB) ----

def pipe_fds(pid):
    """The descriptors of process PID that are pipes."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


def serve_once(handler):
    """A server for one connection, HANDLER(sock) in a thread: (address, thread)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def run():
        a, _ = srv.accept()
        srv.close()
        a.settimeout(30)
        try:
            handler(a)
        finally:
            a.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"127.0.0.1:{srv.getsockname()[1]}", t


def recv_all(s, result):
    """Reads S until EOF into RESULT['data'] (a reset ends it too: RESULT['reset'])."""
    h, n = hashlib.sha256(), 0
    try:
        while True:
            b = s.recv(1 << 18)
            if not b:
                break
            h.update(b)
            n += len(b)
    except ConnectionResetError:
        result["reset"] = True
    result["n"], result["sha"] = n, h.hexdigest()


def test_20mb_each_way_at_once_intact(env):
    """Both directions at once, 20 MB each, checked on both ends."""
    up, down = os.urandom(20 * 1000 * 1000), os.urandom(20 * 1000 * 1000)
    got_up = {}

    def handler(a):
        r = threading.Thread(target=recv_all, args=(a, got_up))
        r.start()
        a.sendall(down)
        a.shutdown(socket.SHUT_WR)
        r.join(30)

    addr, st = serve_once(handler)
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [addr]), wait=[port])
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    got_down = {}
    r = threading.Thread(target=recv_all, args=(c, got_down))
    r.start()
    c.sendall(up)
    c.shutdown(socket.SHUT_WR)
    r.join(30)
    st.join(30)
    c.close()
    assert got_down["n"] == len(down) and got_down["sha"] == hashlib.sha256(down).hexdigest()
    assert got_up["n"] == len(up) and got_up["sha"] == hashlib.sha256(up).hexdigest()
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 0, what="closed")


def test_half_close_after_bulk_both_ways(env):
    """The server sends 1 MB and half-closes: the client gets it all and EOF,
    then still sends 1 MB, which reaches the server before the client's EOF."""
    down, up = os.urandom(1 << 20), os.urandom(1 << 20)
    got_up = {}

    def handler(a):
        a.sendall(down)
        a.shutdown(socket.SHUT_WR)
        recv_all(a, got_up)

    addr, st = serve_once(handler)
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [addr]), wait=[port])
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    got_down = {}
    recv_all(c, got_down)       # returns at the server's EOF, passed on
    assert got_down["n"] == len(down) and got_down["sha"] == hashlib.sha256(down).hexdigest()
    c.sendall(up)
    c.shutdown(socket.SHUT_WR)
    st.join(10)
    assert got_up["n"] == len(up) and got_up["sha"] == hashlib.sha256(up).hexdigest()
    assert c.recv(10) == b""
    c.close()
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 0, what="closed")


@pytest.mark.parametrize("reset", [False, True])
def test_server_closing_mid_stream_ends_the_client(env, reset):
    """The server sends 2 MB while the client streams to it, then closes
    (with unread bytes: a reset, or a linger-0 abort): the client's stream
    ends, the gateway frees the connection and holds no pipe for it."""
    def handler(a):
        a.recv(1 << 16)
        a.sendall(os.urandom(2 << 20))
        if reset:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    addr, st = serve_once(handler)
    port, sp = free_port(), free_port()
    g = env.gateway(conf(port, sp, [addr]), wait=[port])
    base = pipe_fds(g.pid)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = {}
    r = threading.Thread(target=recv_all, args=(c, got))
    r.start()
    chunk = os.urandom(1 << 16)
    try:
        for _ in range(2000):           # until the gateway closes on us
            c.sendall(chunk)
    except OSError:
        pass
    r.join(10)
    assert not r.is_alive()
    st.join(10)
    c.close()
    assert got["n"] <= 2 << 20
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 0, what="closed")
    assert pipe_fds(g.pid) <= base + 2 * 2, "more than this stream's two pipes kept as spares"
    assert g.alive()


def test_stalled_streams_hold_pipes_idle_ones_none(env):
    """Streams stalled by clients that do not read hold their bytes in pipes;
    once drained and idle they hold none: what stays open is the few spare
    pipes (PUMP_PIPE_SPARE, 8), not one per connection."""
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    g = env.gateway(conf(port, sp, [e.addr]), wait=[port])
    base = pipe_fds(g.pid)
    n, chunk = 12, b"y" * 65536
    conns = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.settimeout(10)
        # Past the splice threshold both ways first.
        s.sendall(b"x" * 200000)
        got = 0
        while got < 200000:
            got += len(s.recv(65536))
        s.setblocking(False)
        sent = 0
        for _ in range(4000):           # until every buffer on the way is full
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                break
        conns.append((s, sent))
    wait_until(lambda: pipe_fds(g.pid) >= base + 2 * n, what="a pipe per stalled stream")
    for s, sent in conns:
        s.setblocking(True)
        got = 0
        while got < sent:
            got += len(s.recv(1 << 18))
    wait_until(lambda: pipe_fds(g.pid) <= base + 2 * 8, what="idle streams give their pipes back")
    assert stats(sp)["counters"]["connections_active"] == n
    assert stats(sp)["counters"]["buffers_in_use"] == 0
    for s, _ in conns:
        s.close()


def test_no_descriptor_for_a_pipe_falls_back_to_read_write(env):
    """pipe() failing with EMFILE leaves the stream on the buffer path, intact."""
    import resource
    e = env.dcsim("echo", mode="echo")
    port, sp = free_port(), free_port()
    g = env.gateway(conf(port, sp, [e.addr]), wait=[port])
    fds = [int(f) for f in os.listdir(f"/proc/{g.pid}/fd")]
    limit = len(fds) + 2                # the client's socket and the server's, no more
    if max(fds) >= limit:
        pytest.skip("descriptor numbers with gaps")
    base = pipe_fds(g.pid)
    resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (limit, limit))
    data = os.urandom(4 << 20)
    got = pump(port, data)
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert pipe_fds(g.pid) == base
    assert g.alive()
