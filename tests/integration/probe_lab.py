"""Two namespaces joined by a veth, with servers in one of them, for the DNS and HTTP probes.

  P cli  (client)  veth 10.201.0.1/24, fd00:201::1/64
         /etc/netns/P cli/resolv.conf: nameserver 10.201.0.53, search apps.internal
  P srv  (server)  veth 10.201.0.53/24, fd00:201::53/64
         dnsmasq on 10.201.0.53:53 and [fd00:201::53]:53, zone apps.internal (unknown
         names there: NXDOMAIN)
         python3 -m http.server on 10.201.0.53:8080 (index.html holds HTTP_BODY)
         tests/integration/probe_servers.py: slow DNS on :5301 (DELAY), silent DNS on :5302,
         silent TCP on :5303, HTTPS on :8443 (a self-signed certificate for TLS_NAME and
         10.201.0.53: ProbeLab.cert)

Addresses exist only inside the lab's namespaces. Use as a context manager; down() kills every
server it started, removes both namespaces and the resolv.conf directory, also after a
failed up().
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any

from procs import wait_for
from silk_lab import require_root, sh

HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT_IP = "10.201.0.1"
SERVER_IP = "10.201.0.53"
CLIENT_IP6 = "fd00:201::1"
SERVER_IP6 = "fd00:201::53"
HTTP_PORT = 8080
SLOW_DNS_PORT = 5301
SILENT_DNS_PORT = 5302
SILENT_TCP_PORT = 5303
HTTPS_PORT = 8443
SLOW_DNS_DELAY_MS = 200
HTTP_BODY = "hello from netplay's probe lab\n"

# The zone dnsmasq answers.
BACKEND = ("backend.apps.internal", "10.255.1.11", "fd00:255::11")
WEB = ("web.apps.internal", SERVER_IP)
SRV = ("_http._tcp.apps.internal", "backend.apps.internal", 8080, 5, 10)
TXT = ("info.apps.internal", "netplay probe lab")
TLS_NAME = "tls.apps.internal"


class ProbeLab:
    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"npdh{os.getpid()}-"
        self.client = f"{self.prefix}cli"
        self.server = f"{self.prefix}srv"
        self._created: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._tmp = tempfile.mkdtemp(prefix="netplay-probe-lab-")
        self.netns_etc = f"/etc/netns/{self.client}"
        self.cert = os.path.join(self._tmp, "cert.pem")

    def __enter__(self) -> "ProbeLab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    # ---- lifecycle ----
    def up(self) -> "ProbeLab":
        require_root()
        for ns in (self.client, self.server):
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
            self._created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.client, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
           "netns", self.server)
        for ns, ip, ip6 in ((self.client, CLIENT_IP, CLIENT_IP6),
                            (self.server, SERVER_IP, SERVER_IP6)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "veth0")
            sh("ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "veth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "veth0", "up")
        self.write_resolv_conf(f"nameserver {SERVER_IP}\nsearch apps.internal\n")
        self._start_dnsmasq()
        www = os.path.join(self._tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write(HTTP_BODY)
        self._spawn(["python3", "-m", "http.server", str(HTTP_PORT), "--bind", SERVER_IP,
                     "--directory", www])
        servers = os.path.join(HERE, "probe_servers.py")
        self._spawn(["python3", servers, "slow-dns", SERVER_IP, str(SLOW_DNS_PORT),
                     str(SLOW_DNS_DELAY_MS)])
        self._spawn(["python3", servers, "silent-dns", SERVER_IP, str(SILENT_DNS_PORT)])
        self._spawn(["python3", servers, "silent-tcp", SERVER_IP, str(SILENT_TCP_PORT)])
        key = os.path.join(self._tmp, "key.pem")
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", key, "-out", self.cert, "-days", "1", "-subj", f"/CN={TLS_NAME}",
           "-addext", f"subjectAltName=DNS:{TLS_NAME},IP:{SERVER_IP}")
        self._spawn(["python3", servers, "https", SERVER_IP, str(HTTPS_PORT), self.cert, key, www])
        for proto, port in (("u", 53), ("t", HTTP_PORT), ("u", SLOW_DNS_PORT),
                            ("u", SILENT_DNS_PORT), ("t", SILENT_TCP_PORT), ("t", HTTPS_PORT)):
            if not wait_for(lambda: self._listening(proto, port), 20):
                raise RuntimeError(f"no server listening on {SERVER_IP} {proto} {port}: "
                                   f"{self._stderr_tail()}")
        return self

    def down(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
        self._procs.clear()
        errors = []
        for ns in reversed(self._created):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(f"{ns}: {r.stderr.strip()}")
        self._created.clear()
        shutil.rmtree(self.netns_etc, ignore_errors=True)
        shutil.rmtree(self._tmp, ignore_errors=True)
        if errors:
            raise RuntimeError("probe lab cleanup failed: " + "; ".join(errors))

    def write_resolv_conf(self, text: str) -> None:
        """/etc/netns/CLIENT/resolv.conf, as `ip netns exec` would show it in the client."""
        os.makedirs(self.netns_etc, exist_ok=True)
        with open(os.path.join(self.netns_etc, "resolv.conf"), "w") as f:
            f.write(text)

    # ---- helpers ----
    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self._tmp, f"server{len(self._procs)}.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.server, *argv], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._procs.append(p)
        return p

    def _start_dnsmasq(self) -> None:
        name, v4, v6 = BACKEND
        srv_name, target, port, prio, weight = SRV
        self._spawn([
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", f"--listen-address={SERVER_IP},{SERVER_IP6}",
            "--port=53",
            "--user=root", "--group=root", f"--pid-file={os.path.join(self._tmp, 'dnsmasq.pid')}",
            "--log-facility=-", "--local=/apps.internal/",
            f"--host-record={name},{v4},{v6}", f"--host-record={WEB[0]},{WEB[1]}",
            f"--host-record={TLS_NAME},{SERVER_IP}",
            f"--srv-host={srv_name},{target},{port},{prio},{weight}",
            f"--txt-record={TXT[0]},{TXT[1]}",
        ])

    def _listening(self, proto: str, port: int) -> bool:
        r = sh("ip", "netns", "exec", self.server, "ss", "-Hln" + proto, f"sport = :{port}",
               check=False)
        return r.returncode == 0 and bool(r.stdout.strip())

    def _stderr_tail(self) -> str:
        out = []
        for i in range(len(self._procs)):
            try:
                with open(os.path.join(self._tmp, f"server{i}.log")) as f:
                    out.append(f.read()[-300:])
            except OSError:
                pass
        return " | ".join(t for t in out if t)
