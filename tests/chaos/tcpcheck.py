#!/usr/bin/python3
"""Data-integrity checker for a tcp-mode listener in front of echo servers.

Each connection sends numbered, checksummed messages one at a time and reads
the echo back, comparing every byte with what it sent:

    b"EGCK" | u32 connection | u64 sequence | u32 payload length | u32 crc32 | payload

A reply is classified as
  ok          every byte back, identical, checksum good;
  altered     a byte differs from the one sent at that position, or extra bytes;
  lost        bytes are missing from a stream that went on (a later part of the
              message arrived in place of an earlier one);
  unanswered  the connection ended (FIN or reset) or stayed silent for
              --reply-timeout before the whole message came back, what did
              come back being intact.
After anything but ok the connection is closed and a new one opened.

Output (--events FILE, JSON lines): a cumulative "tick" every --tick seconds,
one line per event that is not ok, and a "final" line; the final counters are
also printed. Exit status: 0, or 1 when a byte was altered or lost.
Bounded: it stops after --seconds, at --max-messages, or on SIGTERM/SIGINT.
"""

import argparse
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import zlib

MAGIC = b"EGCK"
HEAD = struct.Struct("!4sIQII")


class Counters:
    FIELDS = ("sent", "ok", "unanswered", "altered", "lost", "connects", "connect_failures",
              "bytes_sent", "bytes_ok", "bytes_lost", "bytes_altered")

    def __init__(self):
        self.lock = threading.Lock()
        self.v = dict.fromkeys(self.FIELDS, 0)
        self.max_latency = 0.0      # since the last tick

    def add(self, **kw):
        with self.lock:
            for k, n in kw.items():
                self.v[k] += n

    def latency(self, s):
        with self.lock:
            self.max_latency = max(self.max_latency, s)

    def snapshot(self, reset_latency=False):
        with self.lock:
            out = dict(self.v, max_latency=round(self.max_latency, 4))
            if reset_latency:
                self.max_latency = 0.0
            return out


class Events:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else None
        self.lock = threading.Lock()

    def write(self, **kw):
        if self.f:
            kw.setdefault("t", time.time())
            with self.lock:
                self.f.write(json.dumps(kw) + "\n")


def message(conn_id, seq, rnd, max_size):
    # Sizes spread over orders of magnitude: many small, some up to max_size.
    n = min(max_size, int(2 ** rnd.uniform(0, max_size.bit_length())))
    payload = rnd.randbytes(n)
    return HEAD.pack(MAGIC, conn_id, seq, n, zlib.crc32(payload)) + payload


def classify(sent, got):
    """'ok', 'altered', 'lost' or 'short' (an intact prefix) for GOT against SENT."""
    if got == sent:
        magic, _, _, n, crc = HEAD.unpack_from(got)
        return "ok" if magic == MAGIC and zlib.crc32(got[HEAD.size:]) == crc else "altered"
    if len(got) > len(sent):
        return "altered"
    if sent.startswith(got):
        return "short"
    # Where the first difference is, does what came instead belong further on?
    i = next(i for i in range(len(got)) if got[i] != sent[i])
    tail = got[i:i + 64]
    return "lost" if len(tail) >= 8 and sent.find(tail, i + 1) > 0 else "altered"


class Worker(threading.Thread):
    def __init__(self, conn_id, args, counters, events, stop):
        super().__init__(daemon=True)
        self.id, self.args, self.c, self.ev, self.stop = conn_id, args, counters, events, stop
        self.rnd = random.Random(args.seed * 1000 + conn_id)
        self.seq = 0

    def connect(self):
        delay = 0.02
        while not self.stop.is_set():
            try:
                s = socket.create_connection(self.args.addr, timeout=self.args.connect_timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.c.add(connects=1)
                return s
            except OSError as e:
                self.c.add(connect_failures=1)
                self.ev.write(kind="connect_failed", conn=self.id, error=str(e))
                self.stop.wait(delay)
                delay = min(delay * 2, 0.5)
        return None

    def exchange(self, s, msg):
        """Sends MSG, reads its echo. Returns (bytes back, how it ended)."""
        got = bytearray()
        end = time.monotonic() + self.args.reply_timeout
        try:
            s.settimeout(self.args.reply_timeout)
            s.sendall(msg)
            while len(got) < len(msg):
                left = end - time.monotonic()
                if left <= 0:
                    return bytes(got), "timeout"
                s.settimeout(left)
                b = s.recv(min(1 << 20, len(msg) - len(got) + 4096))
                if not b:
                    return bytes(got), "eof"
                got += b
        except socket.timeout:
            return bytes(got), "timeout"
        except OSError as e:
            return bytes(got), "reset" if isinstance(e, ConnectionResetError) else str(e)
        return bytes(got), "complete"

    def run(self):
        s = None
        while not self.stop.is_set() and self.seq < self.args.max_messages:
            if s is None:
                s = self.connect()
                if s is None:
                    break
            self.seq += 1
            msg = message(self.id, self.seq, self.rnd, self.args.max_size)
            t0 = time.time()
            self.c.add(sent=1, bytes_sent=len(msg))
            got, how = self.exchange(s, msg)
            self.c.latency(time.time() - t0)
            verdict = classify(msg, got)
            if verdict == "ok":
                self.c.add(ok=1, bytes_ok=len(msg))
            else:
                if verdict == "short":
                    verdict = "unanswered"
                    self.c.add(unanswered=1)
                elif verdict == "lost":
                    self.c.add(lost=1, bytes_lost=len(msg) - len(got))
                else:
                    self.c.add(altered=1, bytes_altered=len(msg))
                self.ev.write(kind=verdict, conn=self.id, seq=self.seq, sent_at=t0, how=how,
                              want=len(msg), got=len(got))
                s.close()
                s = None
            if self.args.pace:
                self.stop.wait(self.args.pace)
        if s is not None:
            s.close()


def parse_addr(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", required=True, type=parse_addr, dest="addr", metavar="HOST:PORT")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-messages", type=int, default=10_000_000, help="per connection")
    ap.add_argument("--max-size", type=int, default=65536, help="largest payload")
    ap.add_argument("--pace", type=float, default=0.005, help="pause between messages (s)")
    ap.add_argument("--reply-timeout", type=float, default=20)
    ap.add_argument("--connect-timeout", type=float, default=5)
    ap.add_argument("--tick", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=os.getpid())
    ap.add_argument("--events")
    args = ap.parse_args()

    counters, events, stop = Counters(), Events(args.events), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers = [Worker(i, args, counters, events, stop) for i in range(args.conns)]
    for w in workers:
        w.start()
    events.write(kind="start", conns=args.conns, addr=f"{args.addr[0]}:{args.addr[1]}")
    deadline = time.monotonic() + args.seconds
    while not stop.is_set() and any(w.is_alive() for w in workers):
        stop.wait(min(args.tick, max(0.0, deadline - time.monotonic())))
        events.write(tick=counters.snapshot(reset_latency=True))
        if time.monotonic() >= deadline:
            stop.set()
    for w in workers:
        # A worker waiting on a silent connection notices the stop after its timeout.
        w.join(args.reply_timeout + args.connect_timeout + 1)
    final = counters.snapshot()
    events.write(final=final)
    print(json.dumps(final))
    return 1 if final["altered"] or final["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
