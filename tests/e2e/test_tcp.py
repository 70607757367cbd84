"""tcp mode: integrity, half-close, backpressure and connect-failover."""

import hashlib
import os
import socket
import threading

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
