"""Malformed and hostile inputs thrown at a gateway's http listener while it
carries load. Each case is one connection; the answer is classified as the
status code, "closed" (no answer, connection closed) or "silent" (no answer
within the timeout). A 2xx/3xx means the input was passed on to a datacenter."""

import random
import socket

H = b"Host: chaos\r\n"


def _chunked(body):
    return b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body


CASES = [
    ("TLS ClientHello on a plaintext port",
     b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + bytes(range(32)) + b"\x00" * 150),
    ("binary noise", random.Random(7).randbytes(512)),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
    ("Content-Length with Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n"),
    ("two different Content-Length",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("negative Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("Content-Length not a number", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1x\r\n\r\n"),
    ("Transfer-Encoding not ending in chunked",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("unknown Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: foo\r\n\r\n"),
    ("chunk size not hex", _chunked(b"zz\r\nhello\r\n0\r\n\r\n")),
    ("chunk size overflowing 64 bits", _chunked(b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n")),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: chaos\n\n"),
    ("bare CR inside the head", b"GET / HTTP/1.1\rHost: chaos\r\n\r\n"),
    ("obs-fold header", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n"),
    ("space before the colon", b"GET / HTTP/1.1\r\nHost : chaos\r\n\r\n"),
    ("NUL in a header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("bad method token", b"G=T / HTTP/1.1\r\n" + H + b"\r\n"),
    ("HTTP/9.9", b"GET / HTTP/9.9\r\n" + H + b"\r\n"),
    ("HTTP/0.9 request line", b"GET /\r\n\r\n"),
    ("request line of 10 kB", b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\n" + H + b"\r\n"),
    ("header of 20 kB", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 20480 + b"\r\n\r\n"),
    ("150 headers", b"GET / HTTP/1.1\r\n" + H +
     b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n"),
    ("session key with a control byte", b"GET / HTTP/1.1\r\n" + H + b"Cookie: sid=a\x01b\r\n\r\n"),
    ("session key of 300 bytes", b"GET / HTTP/1.1\r\n" + H + b"Cookie: sid=" + b"k" * 300 +
     b"\r\n\r\n"),
    ("chunked body in HTTP/1.0", b"POST /echo HTTP/1.0\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("PROXY header on a listener without accept_proxy",
     b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nGET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("head cut short, then half-close", b"GET / HTTP/1.1\r\nHo"),
    ("smuggled second request after Content-Length",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nContent-Length: 40\r\n\r\n"
     b"abcdGET /smuggled HTTP/1.1\r\n" + H + b"\r\n"),
]


def classify(data):
    if not data:
        return "closed"
    line = data.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return line[1].decode()
    return "junk"


def try_one(host, port, payload, timeout=3.0):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return f"connect: {e.strerror or e}"
    got = b""
    try:
        s.sendall(payload)
        if b"\r\n\r\n" not in payload:
            s.shutdown(socket.SHUT_WR)  # nothing more is coming: no waiting for request_timeout
        while b"\r\n" not in got:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except socket.timeout:
        return classify(got) if got else "silent"
    except OSError:
        pass
    finally:
        s.close()
    return classify(got)


def passed_on(result):
    return result[:1] in ("2", "3")


def run(host, port):
    """[(case, result)] for every case."""
    return [(name, try_one(host, port, payload)) for name, payload in CASES]
