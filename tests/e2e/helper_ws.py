"""A small WebSocket (RFC 6455) client for the end-to-end tests: the upgrade
handshake by hand and a frame encoder/decoder, over a plain or TLS socket."""

import base64
import hashlib
import os
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


def accept_value(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One frame; client frames are masked."""
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n <= 0xffff:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(payload, key):
    if not payload:
        return b""
    # XOR with the key repeated, as one big integer: fast for 64 KiB and more.
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


class Frame:
    def __init__(self, fin, opcode, payload, masked, head_len):
        self.fin, self.opcode, self.payload, self.masked = fin, opcode, payload, masked
        self.head_len = head_len

    def __repr__(self):
        return f"Frame(fin={self.fin}, opcode={self.opcode}, len={len(self.payload)})"


class WSClient:
    """Upgrades SOCK (already connected, plain or TLS) and then speaks frames."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.status = None
        self.headers = {}

    def _fill(self):
        data = self.s.recv(262144)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def upgrade(self, path="/ws", headers=None, host="test", early=b""):
        """Sends the upgrade request (and EARLY bytes right behind it, in the
        same write); reads the response head. Returns the status."""
        self.key = base64.b64encode(os.urandom(16)).decode()
        h = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"}
        h.update(headers or {})
        lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
        self.s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        return self.status

    def accepted(self):
        return (self.status == 101
                and self.headers.get("upgrade", "").lower() == "websocket"
                and "upgrade" in self.headers.get("connection", "").lower()
                and self.headers.get("sec-websocket-accept") == accept_value(self.key))

    def send(self, opcode, payload=b"", fin=True):
        self.s.sendall(encode_frame(opcode, payload, fin=fin))

    def recv_frame(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7f
        head = 2
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
            head += 2
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
            head += 8
        masked = bool(b1 & 0x80)
        key = self._take(4) if masked else None
        payload = self._take(n)
        if masked:
            payload = apply_mask(payload, key)
        return Frame(bool(b0 & 0x80), b0 & 0x0f, payload, masked, head)

    def closed_by_peer(self, timeout=2.0):
        """True when the peer closes (EOF or reset) within TIMEOUT."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except OSError:   # socket.timeout is an OSError
            return False

    def close(self):
        self.s.close()
