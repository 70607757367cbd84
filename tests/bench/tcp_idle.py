#!/usr/bin/python3
"""Memory and descriptors per idle tcp-mode connection after a transfer.

    tests/bench/tcp_idle.py PORT PID N [BYTES]

Opens 256 warm-up connections (used, closed), reads the proxy's VmRSS, then
opens N connections to PORT (a tcp listener in front of an echo server),
sends BYTES (default 256 KiB: past the splice threshold) on each, reads
them back and leaves the connection open. Prints the VmRSS growth per
connection and the pipes the proxy holds (descriptors that are pipes) before
and after.
"""
import os
import resource
import select
import socket
import sys


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def pipes(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


def use(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port))
    data = b"x" * nbytes
    s.setblocking(False)
    sent = got = 0
    po = select.poll()
    while got < nbytes:
        po.register(s, select.POLLIN | (select.POLLOUT if sent < nbytes else 0))
        ev = po.poll(10000)
        if not ev:
            raise RuntimeError("stalled")
        r, w = ev[0][1] & select.POLLIN, ev[0][1] & select.POLLOUT
        if w:
            sent += s.send(data[sent:sent + 65536])
        if r:
            b = s.recv(65536)
            if not b:
                raise RuntimeError("closed")
            got += len(b)
    return s


def main():
    port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    nbytes = int(sys.argv[4]) if len(sys.argv) > 4 else 256 * 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    for _ in range(256):
        use(port, nbytes).close()
    p0, r0 = pipes(pid), rss(pid)
    held = [use(port, nbytes) for _ in range(n)]
    r1, p1 = rss(pid), pipes(pid)
    print(f"conns {n} bytes_each {nbytes} rss_per_conn {(r1 - r0) / n:.0f} "
          f"pipe_fds_before {p0} pipe_fds_after {p1}")
    for s in held:
        s.close()


main()
