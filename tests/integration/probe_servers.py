#!/usr/bin/env python3
"""Misbehaving servers for the probe tests, run inside a test's namespace:

  probe_servers.py slow-dns IP PORT DELAY_MS   answers every A query with 10.9.9.9 (TTL 5)
                                               DELAY_MS after it came (other types: NOERROR,
                                               no records)
  probe_servers.py silent-dns IP PORT          reads UDP queries and never answers
  probe_servers.py silent-tcp IP PORT          accepts TCP connections, reads, never answers
  probe_servers.py https IP PORT CERT KEY DIR  serves DIR over HTTPS (http.server with TLS)

Each runs until killed. Only the standard library; no upstream is ever asked.
"""

import select
import socket
import sys
import time


def dns_reply(query: bytes) -> bytes | None:
    if len(query) < 12:
        return None
    # End of the question: the name's labels, then QTYPE and QCLASS.
    i = 12
    while i < len(query) and query[i] != 0:
        i += 1 + query[i]
    end = i + 5
    if end > len(query):
        return None
    qtype = int.from_bytes(query[i + 1:i + 3], "big")
    answers = 1 if qtype == 1 else 0
    header = (query[:2] + bytes([0x81, 0x80]) + b"\x00\x01" + answers.to_bytes(2, "big")
              + b"\x00\x00\x00\x00")
    body = query[12:end]
    if answers:
        body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + bytes([10, 9, 9, 9])
    return header + body


def slow_dns(ip: str, port: int, delay_ms: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    pending = []  # (due, reply, peer)
    while True:
        timeout = None
        if pending:
            timeout = max(0.0, pending[0][0] - time.monotonic())
        r, _, _ = select.select([s], [], [], timeout)
        if r:
            data, peer = s.recvfrom(4096)
            reply = dns_reply(data)
            if reply is not None:
                pending.append((time.monotonic() + delay_ms / 1000.0, reply, peer))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, reply, peer = pending.pop(0)
            s.sendto(reply, peer)


def silent_dns(ip: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    while True:
        s.recvfrom(4096)


def silent_tcp(ip: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(64)
    conns = []
    while True:
        r, _, _ = select.select([s] + conns, [], [])
        for c in r:
            if c is s:
                conns.append(s.accept()[0])
            elif not c.recv(4096):
                conns.remove(c)
                c.close()


def https(ip: str, port: int, cert: str, key: str, directory: str) -> None:
    import functools
    import ssl
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    handler = functools.partial(SimpleHTTPRequestHandler, directory=directory)
    httpd = ThreadingHTTPServer((ip, port), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.serve_forever()


def main() -> None:
    mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "slow-dns":
        slow_dns(ip, port, int(sys.argv[4]))
    elif mode == "silent-dns":
        silent_dns(ip, port)
    elif mode == "silent-tcp":
        silent_tcp(ip, port)
    elif mode == "https":
        https(ip, port, sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
