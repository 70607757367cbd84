"""HTTP/2 helpers for the end-to-end tests, with python3-h2: a client that
exposes every event (and can write raw frames), an HTTP/2 server for
gRPC-style exchanges, and an HTTP/1.1 server that records what it was sent
and can answer with a chunked body and trailers."""

import socket
import ssl
import struct
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and error codes (RFC 9113).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = \
    0, 1, 2, 3, 4, 6, 7, 8, 9
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, \
    REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 2, 3, 5, 7, 8, 11
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7fffffff) + payload


def tls_socket(port, host="127.0.0.1", timeout=5.0):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="site.test")
    assert s.selected_alpn_protocol() == "h2"
    return s


class H2Client:
    """One HTTP/2 connection. Responses are collected per stream:
    {stream: {"headers": [...], "data": b"", "trailers": [...], "ended": bool,
    "reset": code or None}}; a GOAWAY received is kept in self.goaway."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=5.0, settings=None):
        self.s = tls_socket(port, host, timeout) if tls else \
            socket.create_connection((host, port), timeout=timeout)
        self.s.settimeout(timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        validate_inbound_headers=False,
                                        normalize_outbound_headers=False)
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.streams = {}
        self.goaway = None
        self.closed = False
        self.flush()

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.s.sendall(data)

    def send_raw(self, data):
        self.s.sendall(data)

    def request(self, path="/", headers=(), body=None, method=None, end=True, authority="test"):
        sid = self.c.get_next_available_stream_id()
        m = method or ("POST" if body is not None else "GET")
        h = [(":method", m), (":path", path), (":scheme", "http"), (":authority", authority)]
        h += list(headers)
        self.c.send_headers(sid, h, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False,
                             "reset": None, "informational": []}
        return sid

    def send_body(self, sid, body, end=True):
        while body:
            n = min(len(body), self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if n == 0:
                self.flush()
                self.pump()
                continue
            self.c.send_data(sid, body[:n])
            body = body[n:]
        if end:
            self.c.end_stream(sid)
        self.flush()

    def pump(self):
        """Reads once and handles what arrived; False at the end."""
        try:
            data = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.c.receive_data(data):
            self.handle(ev)
        self.flush()
        return True

    def handle(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            st["headers"] = ev.headers
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            st["informational"].append(ev.headers)
        elif isinstance(ev, h2.events.TrailersReceived):
            st["trailers"] = ev.headers
        elif isinstance(ev, h2.events.DataReceived):
            st["data"] += ev.data
            self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)

    def wait(self, cond, what="condition"):
        while not cond():
            if not self.pump():
                break
        assert cond(), f"no {what}"

    def response(self, sid):
        self.wait(lambda: self.streams[sid]["ended"] or self.streams[sid]["reset"] is not None,
                  f"answer on stream {sid}")
        return self.streams[sid]

    def get(self, path="/", headers=(), body=None, method=None):
        return self.response(self.request(path, headers, body, method))

    def read_frames(self, timeout=3.0):
        return read_frames(self.s, timeout)

    def close(self):
        self.s.close()


def read_frames(sock, timeout=3.0):
    """Raw frames until the connection closes or TIMEOUT: [(type, flags, stream, payload)]."""
    sock.settimeout(timeout)
    buf, frames = b"", []
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            buf += d
    except (socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff,
                       buf[9:9 + n]))
        buf = buf[9 + n:]
    return frames


def status(st):
    return int(dict(st["headers"])[":status"])


def goaway_of(frames):
    """(error code, last stream) of the first GOAWAY among FRAMES, or None."""
    for t, _, _, p in frames:
        if t == GOAWAY:
            return int.from_bytes(p[4:8], "big"), int.from_bytes(p[:4], "big") & 0x7fffffff
    return None


def resets_of(frames):
    return {s: int.from_bytes(p[:4], "big") for t, _, s, p in frames if t == RST_STREAM}


class RESET:
    def __init__(self, code):
        self.code = code


class H2Server(threading.Thread):
    """An HTTP/2 server (prior knowledge, or TLS with ALPN h2 given TLS_CTX)
    answering every stream with HANDLER(headers, body, trailers) ->
    (headers, body, trailers), or with a reset: RESET(code) as the answer, or
    as its body to reset after the head. It records the requests it got and
    the connections that carried any."""

    def __init__(self, port, handler, tls_ctx=None):
        super().__init__(daemon=True)
        self.port, self.handler, self.tls_ctx = port, handler, tls_ctx
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        self.requests = []
        self.connections = 0        # that carried a request
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            if self.tls_ctx:
                try:
                    s = self.tls_ctx.wrap_socket(s, server_side=True)
                except (ssl.SSLError, OSError):
                    s.close()
                    continue
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        c = h2.connection.H2Connection(config=cfg)
        c.initiate_connection()
        reqs = {}
        counted = False
        try:
            s.sendall(c.data_to_send())
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        reqs[ev.stream_id] = {"headers": ev.headers, "body": b"",
                                              "trailers": None}
                    elif isinstance(ev, h2.events.DataReceived):
                        reqs[ev.stream_id]["body"] += ev.data
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        reqs[ev.stream_id]["trailers"] = ev.headers
                    elif isinstance(ev, h2.events.StreamEnded):
                        r = reqs.pop(ev.stream_id)
                        self.requests.append(r)
                        if not counted:
                            counted = True
                            self.connections += 1
                        answer = self.handler(r["headers"], r["body"], r["trailers"])
                        if isinstance(answer, RESET):
                            c.reset_stream(ev.stream_id, answer.code)
                            continue
                        hs, body, trailers = answer
                        c.send_headers(ev.stream_id, hs, end_stream=not body and not trailers)
                        if isinstance(body, RESET):
                            c.reset_stream(ev.stream_id, body.code)
                            continue
                        if body:
                            c.send_data(ev.stream_id, body, end_stream=not trailers)
                        if trailers:
                            c.send_headers(ev.stream_id, trailers, end_stream=True)
                s.sendall(c.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            s.close()

    def stop(self):
        self.stopped = True
        self.ls.close()


class H1Server(threading.Thread):
    """An HTTP/1.1 server that records each request (head text, body after
    unchunking, trailer lines) and answers with a chunked body and trailers
    (or with Content-Length when TRAILERS is None)."""

    def __init__(self, port, body=b"hello", trailers=(("x-checksum", "abc"),)):
        super().__init__(daemon=True)
        self.port, self.body, self.trailers = port, body, trailers
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        self.requests = []

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        f = s.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                text = head.decode("latin-1")
                lines = text.split("\r\n")
                hdrs = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
                body, trailers = b"", []
                if hdrs.get("transfer-encoding", [""])[0].lower() == "chunked":
                    while True:
                        size = int(f.readline().split(b";")[0], 16)
                        if size == 0:
                            while True:
                                line = f.readline()
                                if line in (b"\r\n", b""):
                                    break
                                trailers.append(line.decode().strip())
                            break
                        body += f.read(size)
                        f.readline()
                elif "content-length" in hdrs:
                    body = f.read(int(hdrs["content-length"][0]))
                self.requests.append({"head": text, "headers": hdrs, "body": body,
                                      "trailers": trailers})
                if self.trailers is None:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body)
                              + self.body)
                    continue
                out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n" \
                      b"Keep-Alive: timeout=5\r\nTrailer: x-checksum\r\n\r\n"
                out += b"%x\r\n%s\r\n0\r\n" % (len(self.body), self.body)
                out += b"".join(f"{k}: {v}\r\n".encode() for k, v in self.trailers) + b"\r\n"
                s.sendall(out)
        except (OSError, ValueError):
            return
        finally:
            s.close()

    def stop(self):
        self.ls.close()
