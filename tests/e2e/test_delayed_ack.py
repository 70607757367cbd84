"""delayed_ack: the ACK of a client's first bytes rides on the answer, and a
server connection's handshake ends on the bytes sent on it, so each new
connection costs fewer packets. Counted with TCP_INFO's segs_in on the
client's and the server's sockets, against the same listener with
delayed_ack off."""

import socket
import struct
import threading

from conftest import free_port, stats, wait_until

SEGS_IN = 140  # offset of tcpi_segs_in in struct tcp_info
ROUNDS = 12


def segs_in(sock):
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256),
                              SEGS_IN)[0]


class CountingServer:
    """Answers one request (an HTTP head, or a tcp line it echoes) per
    connection, one connection at a time, and closes; records the segments each connection had
    received when its request was read."""

    def __init__(self, http):
        self.http = http
        self.seen = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                end = b"\r\n\r\n" if self.http else b"\n"
                buf = b""
                while end not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                self.seen.append(segs_in(c))
                if self.http:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
                else:  # open until the client ends: no FIN of ours in its count
                    c.sendall(buf)
                    while c.recv(4096):
                        pass


def client_segments(port, http):
    """One connection: request, the whole answer, then the segments it took."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" if http else b"ping\n")
    got = b""
    if http:
        while True:  # the answer, then the gateway's end
            d = s.recv(4096)
            if not d:
                break
            got += d
        assert got.startswith(b"HTTP/1.1 200"), got
    else:
        while not got.endswith(b"ping\n"):
            d = s.recv(4096)
            assert d, got
            got += d
    n = segs_in(s)
    s.close()
    return n


def test_delayed_ack_saves_packets_on_both_sides(env):
    """With delayed_ack on (the default), the fewest segments any
    connection took is lower, on the client's side and on the server's,
    in http and in tcp mode, than with it off. Several connections each,
    since an answer slower than the delayed-ACK timer (40 ms on a busy
    machine) lets the ACK go alone, and in tcp mode the client's bytes may
    not have arrived yet when the gateway connects."""
    servers = {m: CountingServer(m == "http") for m in ("http", "tcp")}
    ports = {(m, a): free_port() for m in ("http", "tcp") for a in ("on", "off")}
    conf = "".join(f"datacenter {m} {{ server {servers[m].addr}; }}\n" for m in servers)
    for (m, a), p in ports.items():
        conf += (f"listener {m}_{a} {{ listen 127.0.0.1:{p}; mode {m}; datacenters {m}; "
                 f"delayed_ack {a}; }}\n")
    env.gateway(conf, wait=ports.values())
    for m in ("http", "tcp"):
        client, server = {}, {}
        for a in ("on", "off"):
            srv = servers[m]
            before = len(srv.seen)
            client[a] = sorted(client_segments(ports[(m, a)], m == "http") for _ in range(ROUNDS))
            wait_until(lambda: len(srv.seen) >= before + ROUNDS, what="requests at the server")
            server[a] = sorted(srv.seen[before:])
        print(f"{m}: segments in, client {client}, server {server}")
        assert client["on"][0] < client["off"][0], (m, client)
        assert server["on"][0] < server["off"][0], (m, server)


def test_defer_accept_hands_over_connections_with_bytes(env):
    """defer_accept (the default in http mode): a connection that sent
    nothing yet stays with the kernel; it is accepted with its first bytes.
    A listener with it off (tcp mode's default) accepts at once."""
    servers = {m: CountingServer(m == "http") for m in ("http", "tcp")}
    http_port, tcp_port, sp = free_port(), free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter http {{ server {servers['http'].addr}; }}\n"
                f"datacenter tcp {{ server {servers['tcp'].addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{http_port}; datacenters http; }}\n"
                f"listener raw {{ listen 127.0.0.1:{tcp_port}; mode tcp; datacenters tcp; }}\n",
                wait=[http_port, tcp_port])

    def accepted(name):
        return {x["name"]: x for x in stats(sp)["listeners"]}[name]["connections_total"]
    web = socket.create_connection(("127.0.0.1", http_port), timeout=5)
    raw = socket.create_connection(("127.0.0.1", tcp_port), timeout=5)
    # The tcp listener's connection, opened after the http one, is accepted
    # at once; by then the silent http one is still the kernel's.
    wait_until(lambda: accepted("raw") == 1, what="the tcp connection accepted")
    assert accepted("web") == 0
    web.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert web.recv(4096).startswith(b"HTTP/1.1 200")
    assert accepted("web") == 1
    web.close()
    raw.close()
