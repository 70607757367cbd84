"""TLS helpers for the end-to-end tests: certificates made with openssl in a
temporary directory, TLS clients that expose the peer certificate, a raw
keep-alive HTTP client over TLS and a ClientHello for half-open handshakes."""

import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import RawHTTP

# The certificates every TLS test uses (name -> subjectAltName DNS names).
CERTS = {
    "default": ["default.test"],
    "site": ["site.test", "www.site.test"],
    "wild": ["*.wild.test"],
    "other": ["other.test"],
    "x_a": ["x.test"],
    "x_b": ["x.test"],
}


class Cert:
    def __init__(self, directory, name, dns):
        self.name = name
        self.dns = dns
        self.cert = os.path.join(directory, f"{name}.pem")
        self.key = os.path.join(directory, f"{name}.key")
        san = ",".join(f"DNS:{d}" for d in dns)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", f"/CN={dns[0]}", "-addext", f"subjectAltName={san}",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True, timeout=60)
        with open(self.cert) as f:
            self.der = ssl.PEM_cert_to_DER_cert(f.read())

    @property
    def cn(self):
        return self.dns[0]


class Certs(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


def make_certs(directory, names=None):
    os.makedirs(directory, exist_ok=True)
    return Certs({n: Cert(directory, n, CERTS[n]) for n in (names or CERTS)})


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Self-signed certificates, made once per test module."""
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def client_ctx(cafiles=(), verify=True, tls_min=None, tls_max=None):
    """A client context trusting CAFILES (self-signed certificates are their own
    CA); without VERIFY any certificate is accepted."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        for ca in cafiles:
            ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls_min:
        ctx.minimum_version = tls_min
    if tls_max:
        ctx.maximum_version = tls_max
    return ctx


def peer_cert(port, server_hostname, timeout=5.0):
    """The DER certificate the gateway presents for SERVER_HOSTNAME (None: no
    SNI), without verifying it."""
    ctx = client_ctx(verify=False)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            return s.getpeercert(binary_form=True)


class TLSRawHTTP(RawHTTP):
    """RawHTTP (conftest) over TLS."""

    def __init__(self, port, ctx, server_hostname, host="127.0.0.1", timeout=5.0):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.s = ctx.wrap_socket(raw, server_hostname=server_hostname)
        self.buf = b""

    def peer_der(self):
        return self.s.getpeercert(binary_form=True)


def client_hello(server_hostname="site.test"):
    """The bytes of a real ClientHello, made with a memory BIO."""
    ctx = client_ctx(verify=False)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def s_client(port, *args, servername=None, stdin_delay=0.3, timeout=15):
    """Runs openssl s_client against 127.0.0.1:PORT. Its stdin stays open for
    STDIN_DELAY seconds (time for post-handshake messages such as TLS 1.3
    tickets to arrive) and is then closed, which ends the client. Returns
    (exit code, stdout + stderr)."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    if servername:
        argv += ["-servername", servername]
    argv += list(args)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    time.sleep(stdin_delay)
    try:
        out, _ = p.communicate(timeout=timeout)   # closes stdin first
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return p.returncode, out.decode(errors="replace")


def exchange_nonblocking(sock, data, want, timeout=60):
    """Sends DATA while reading what comes back, on one thread (an SSLSocket
    may not be used by two at once), until WANT bytes came back, EOF or the
    timeout. Returns (bytes sent, bytes received)."""
    sock.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        progressed = False
        if sent < len(data):
            try:
                sent += sock.send(data[sent:sent + 65536])
                progressed = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
        try:
            b = sock.recv(262144)
            if not b:
                break
            got += b
            progressed = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        if not progressed:
            time.sleep(0.001)
    return sent, bytes(got)
