"""A Silk-like two-cell overlay built entirely inside network namespaces the test creates,
wired the way Silk's own code (cloudfoundry/silk-release) wires a cell:

Topology (prefix P, e.g. "np1234a-"; cells i = 1..N, containers k = 1..M per cell):

  P c1 (cell 1)                                   P c2 (cell 2)
    eth0 10.0.0.1/24  <---- underlay veth ---->     eth0 10.0.0.2/24
    silk-vtep vxlan id 1 dstport 4789 dev eth0 local 10.0.0.i gbp nolearning
      (MTU not set: the kernel's underlay - 50 = 1450)
      MAC ee:ee:0a:ff:0i:00, address 10.255.i.0/16 scope link
      route 10.255.j.0/24 via 10.255.j.0 src 10.255.i.0 dev silk-vtep   (every other cell j)
      neigh 10.255.j.0 lladdr ee:ee:0a:ff:0j:00 PERMANENT
      fdb   ee:ee:0a:ff:0j:00 dst 10.0.0.j self permanent
    s-01025500i0KK  MAC aa:aa:<hex ip>, 169.254.0.1 peer <ip>/32 scope link   (host side)
        | veth, MTU of silk-vtep, ARP off on both ends
  P c1k1 (container)  eth0 (created as c-01025500i0KK and renamed, as the CNI plugin does)
        MAC ee:ee:<hex ip>, <ip>/32, default via 169.254.0.1 src <ip>,
        neigh 169.254.0.1 -> aa:aa:<hex ip> PERMANENT

Container k of cell i has IP 10.255.i.(10+k). Addresses are private and exist only inside
the lab's namespaces; nothing is routed to the outside.

GBP marks (on unless Lab(marks=False)), as Silk's vxlan-policy-agent writes them
(silk-release: vxlan-policy-agent/enforcer/enforcer.go NewPolicyChain/enforce,
lib/rules/rules.go NewMarkSetRule, vxlan-policy-agent/planner/planner_linux.go):
every container is an app with a deterministic guid and a tag unique across the lab
("0001", "0002", ... in lab order: c1k1, c1k2, ..., c2k1, ...). Each cell gets, in its
filter table, a chain vpa--<microseconds since the epoch> jumped from FORWARD (inserted
first) and one rule per local container:

  -A FORWARD -j vpa--1767225600000000
  -A vpa--1767225600000000 -s 10.255.1.11/32 -m comment --comment "src:<app guid>"
     -j MARK --set-xmark 0x1/0xffffffff                      (as iptables-save prints it)

so traffic a container sends across the overlay leaves the cell with skb->mark = its tag,
which the GBP VTEP writes as the VXLAN group policy id (flags 0x88). A reply is marked by
the replying container's cell. Traffic from the cell itself (10.255.i.0) is not forwarded
and carries no GBP id (flags 0x08). write_tags() writes the policy server's tags list
({"tags":[{"id": "<app guid>", "tag": "0003"}]}), write_store() a cell's container
metadata store.json (handle -> {handle, ip, metadata{app_id, space_id, org_id,
policy_group_id}}).

Use as a context manager: `with Lab() as lab: ...`; down() always removes every namespace it
created, also when up() failed half-way.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import tempfile
import time
import uuid
from typing import Any

_counter = itertools.count()

# Fixed namespace for the lab's uuid-like ids: the same container gets the same guid in
# every run.
_LAB_UUID_NS = uuid.UUID("6e657470-6c61-4940-8c61-620000000000")


def lab_guid(name: str) -> str:
    """A deterministic uuid-like guid for `name` (an app, a space, an org)."""
    return str(uuid.uuid5(_LAB_UUID_NS, name))


def garden_handle(name: str) -> str:
    """A deterministic container handle shaped like Garden's (8-4-4-4-4 hex digits)."""
    return lab_guid("handle " + name)[:28]


def require_root() -> None:
    """Tests that need namespaces fail (never skip) without root."""
    if os.geteuid() != 0:
        raise AssertionError("this test needs root: it creates network namespaces")


def silk_name(prefix: str, ip: str) -> str:
    """10.255.211.40 -> s-010255211040 (prefix 's-') or c-010255211040."""
    return prefix + "".join(f"{int(o):03d}" for o in ip.split("."))


def silk_mac(prefix: str, ip: str) -> str:
    """('aa:aa', 10.255.211.40) -> aa:aa:0a:ff:d3:28."""
    return prefix + ":" + ":".join(f"{int(o):02x}" for o in ip.split("."))


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.strip()}")
    return p


@dataclasses.dataclass
class Container:
    ns: str
    ip: str
    host_if: str   # s-..., in the cell namespace
    cont_if: str   # eth0 in the container namespace (created as c-... and renamed)
    host_mac: str  # aa:aa:...
    cont_mac: str  # ee:ee:...
    app_guid: str = ""  # the app this container runs (one app per container)
    tag: str = ""       # the app's policy tag, 4 hex digits ("0003"); GBP id int(tag, 16)
    handle: str = ""    # the container's handle in the cell's metadata store

    @property
    def gbp(self) -> int:
        """The VXLAN group policy id the kernel writes for this container's traffic."""
        return int(self.tag, 16)


@dataclasses.dataclass
class Cell:
    index: int
    ns: str
    underlay_if: str
    underlay_ip: str
    overlay_ip: str      # 10.255.i.0, on silk-vtep
    overlay_cidr: str    # 10.255.i.0/24
    vtep_mac: str
    vtep_port: int = 4789
    containers: list[Container] = dataclasses.field(default_factory=list)
    policy_chain: str | None = None  # vpa--<timestamp>, when the lab marks


class Lab:
    VTEP = "silk-vtep"
    GATEWAY = "169.254.0.1"

    SPACE_GUID = lab_guid("space")
    ORG_GUID = lab_guid("org")

    def __init__(self, cells: int = 2, containers: int = 2, prefix: str | None = None,
                 vtep_port: int = 4789, marks: bool = True):
        if cells < 1 or cells > 2:
            raise ValueError("the underlay is one veth pair: 1 or 2 cells")
        self.prefix = prefix or f"np{os.getpid()}{next(_counter)}-"
        self.n_cells = cells
        self.n_containers = containers
        self.vtep_port = vtep_port
        self.marks = marks
        self.cells: list[Cell] = []
        self._created: list[str] = []

    # ---- lifecycle ----
    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def _add_ns(self, name: str) -> str:
        sh("ip", "netns", "del", name, check=False)  # leftovers of a crashed run
        sh("ip", "netns", "add", name)
        self._created.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def up(self) -> "Lab":
        require_root()
        for i in range(1, self.n_cells + 1):
            cell = Cell(index=i, ns=self._add_ns(f"{self.prefix}c{i}"), underlay_if="eth0",
                        underlay_ip=f"10.0.0.{i}", overlay_ip=f"10.255.{i}.0",
                        overlay_cidr=f"10.255.{i}.0/24",
                        vtep_mac=silk_mac("ee:ee", f"10.255.{i}.0"), vtep_port=self.vtep_port)
            self.cells.append(cell)
            sh("ip", "netns", "exec", cell.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Underlay: one veth pair between the two cells (or a stub in a single cell).
        c1 = self.cells[0]
        if self.n_cells == 2:
            c2 = self.cells[1]
            self.ip(c1.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                    "netns", c2.ns)
        else:
            self.ip(c1.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
            self.ip(c1.ns, "link", "set", "eth0-peer", "up")
        for cell in self.cells:
            self.ip(cell.ns, "addr", "add", f"{cell.underlay_ip}/24", "dev", "eth0")
            self.ip(cell.ns, "link", "set", "eth0", "up")
        for cell in self.cells:
            self._build_vtep(cell, cell.vtep_port)
            for k in range(1, self.n_containers + 1):
                self._add_container(cell, k)
        if self.marks:
            for cell in self.cells:
                self.mark_apps(cell)
        return self

    def down(self) -> None:
        errors = []
        for ns in reversed(self._created):
            p = sh("ip", "netns", "del", ns, check=False)
            if p.returncode != 0:
                errors.append(f"{ns}: {p.stderr.strip()}")
        self._created.clear()
        self.cells.clear()
        if errors:
            raise RuntimeError("lab cleanup failed: " + "; ".join(errors))

    # ---- building blocks ----
    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "-n", ns, *args, check=check)

    def bridge(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("bridge", "-n", ns, *args, check=check)

    def _build_vtep(self, cell: Cell, port: int) -> None:
        cell.vtep_port = port
        self.ip(cell.ns, "link", "add", self.VTEP, "address", cell.vtep_mac, "type", "vxlan",
                "id", "1", "dstport", str(port), "dev", cell.underlay_if, "local",
                cell.underlay_ip, "gbp", "nolearning")
        self.ip(cell.ns, "addr", "add", f"{cell.overlay_ip}/16", "scope", "link", "dev",
                self.VTEP)
        self.ip(cell.ns, "link", "set", self.VTEP, "up")
        for other in self.cells:
            if other is cell:
                continue
            self.ip(cell.ns, "neigh", "add", other.overlay_ip, "lladdr", other.vtep_mac, "dev",
                    self.VTEP, "nud", "permanent")
            self.bridge(cell.ns, "fdb", "add", other.vtep_mac, "dev", self.VTEP, "dst",
                        other.underlay_ip, "self", "permanent")
            self.ip(cell.ns, "route", "add", other.overlay_cidr, "via", other.overlay_ip, "src",
                    cell.overlay_ip, "dev", self.VTEP)

    def vtep_mtu(self, cell: Cell) -> int:
        return self.ip_json(cell.ns, "link", "show", self.VTEP)[0]["mtu"]

    def _add_container(self, cell: Cell, k: int) -> Container:
        ip = f"10.255.{cell.index}.{10 + k}"
        created_as = silk_name("c-", ip)
        # Tags are unique across the lab: 0001, 0002, ... in the order c1k1, c1k2, ..., c2k1.
        n = (cell.index - 1) * self.n_containers + k
        c = Container(ns=f"{self.prefix}c{cell.index}k{k}", ip=ip, host_if=silk_name("s-", ip),
                      cont_if="eth0", host_mac=silk_mac("aa:aa", ip),
                      cont_mac=silk_mac("ee:ee", ip), app_guid=lab_guid(f"app c{cell.index}k{k}"),
                      tag=f"{n:04X}", handle=garden_handle(f"c{cell.index}k{k}"))
        self._add_ns(c.ns)
        mtu = str(self.vtep_mtu(cell))
        self.ip(cell.ns, "link", "add", c.host_if, "mtu", mtu, "address", c.host_mac, "type",
                "veth", "peer", "name", created_as, "mtu", mtu, "address", c.cont_mac, "netns",
                c.ns)
        self.ip(c.ns, "link", "set", created_as, "name", c.cont_if)
        self.ip(cell.ns, "link", "set", c.host_if, "arp", "off")
        self.ip(c.ns, "link", "set", c.cont_if, "arp", "off")
        self.ip(cell.ns, "addr", "add", self.GATEWAY, "peer", f"{ip}/32", "scope", "link", "dev",
                c.host_if)
        self.ip(cell.ns, "link", "set", c.host_if, "up")
        self.ip(cell.ns, "neigh", "add", ip, "lladdr", c.cont_mac, "dev", c.host_if, "nud",
                "permanent")
        self.ip(c.ns, "addr", "add", f"{ip}/32", "dev", c.cont_if)
        self.ip(c.ns, "link", "set", c.cont_if, "up")
        self.ip(c.ns, "neigh", "add", self.GATEWAY, "lladdr", c.host_mac, "dev", c.cont_if, "nud",
                "permanent")
        self.ip(c.ns, "route", "add", self.GATEWAY, "dev", c.cont_if, "scope", "link", "src", ip)
        self.ip(c.ns, "route", "add", "default", "via", self.GATEWAY, "dev", c.cont_if, "src", ip)
        cell.containers.append(c)
        return c

    # ---- GBP marks and the policy data that names them ----
    def mark_apps(self, cell: Cell) -> str:
        """Marks the egress of every container of `cell` with its app's tag, as Silk's
        vxlan-policy-agent does: a new chain vpa--<microseconds> in the filter table (iptables
        -N), a jump to it inserted first in FORWARD, then one MARK rule per container, both
        through `iptables-restore --noflush` with the rule text the agent builds. Returns the
        chain's name."""
        chain = f"vpa--{time.time_ns() // 1000}"
        ipt = ("ip", "netns", "exec", cell.ns)
        sh(*ipt, "iptables", "-w", "-t", "filter", "-N", chain)
        sh(*ipt, "iptables-restore", "--noflush",
           input=f"*filter\n-I FORWARD 1 -j {chain}\nCOMMIT\n")
        rules = [f"-A {chain} --source {c.ip} --jump MARK --set-xmark 0x{c.tag} "
                 f"-m comment --comment src:{c.app_guid}\n"
                 for c in sorted(cell.containers, key=lambda c: (c.ip, c.tag, c.app_guid))]
        sh(*ipt, "iptables-restore", "--noflush", input="*filter\n" + "".join(rules) + "COMMIT\n")
        cell.policy_chain = chain
        return chain

    def filter_rules(self, cell: Cell) -> list[str]:
        """The cell's filter table as `iptables-save` prints it (the -A lines)."""
        out = sh("ip", "netns", "exec", cell.ns, "iptables-save", "-t", "filter").stdout
        return [line for line in out.splitlines() if line.startswith("-A ")]

    def containers(self) -> list[Container]:
        return [c for cell in self.cells for c in cell.containers]

    def tags(self) -> dict:
        """The policy server's tags list (GET /networking/v1/external/tags) for the lab's
        apps."""
        return {"tags": [{"id": c.app_guid, "tag": c.tag} for c in self.containers()]}

    def store(self, cell: Cell) -> dict:
        """The cell's container metadata store (/var/vcap/data/container-metadata/store.json):
        handle -> {handle, ip, metadata{app_id, space_id, org_id, policy_group_id}}."""
        return {c.handle: {"handle": c.handle, "ip": c.ip,
                           "metadata": {"app_id": c.app_guid, "space_id": self.SPACE_GUID,
                                        "org_id": self.ORG_GUID, "policy_group_id": c.app_guid}}
                for c in cell.containers}

    def write_tags(self, directory: str, name: str = "tags.json") -> str:
        """Writes tags() as JSON into `directory`; returns the file's path."""
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            json.dump(self.tags(), f, indent=2)
        return path

    def write_store(self, cell: Cell, directory: str, name: str | None = None) -> str:
        """Writes store(cell) as JSON into `directory` (store-c<i>.json unless `name`);
        returns the file's path."""
        path = os.path.join(directory, name or f"store-c{cell.index}.json")
        with open(path, "w") as f:
            json.dump(self.store(cell), f, indent=3)
        return path

    def write_stores(self, directory: str) -> list[str]:
        """One store file per cell, in cell order."""
        return [self.write_store(cell, directory) for cell in self.cells]

    # ---- fault injectors ----
    def link_down(self, ns: str, dev: str) -> None:
        self.ip(ns, "link", "set", dev, "down")

    def set_mac(self, ns: str, dev: str, mac: str) -> None:
        self.ip(ns, "link", "set", dev, "address", mac)

    def del_neigh(self, ns: str, ip: str, dev: str) -> None:
        self.ip(ns, "neigh", "del", ip, "dev", dev)

    def del_fdb(self, ns: str, mac: str, dev: str = VTEP, dst: str | None = None) -> None:
        args = ["fdb", "del", mac, "dev", dev]
        if dst:
            args += ["dst", dst]
        self.bridge(ns, *args)

    def vtep_dstport(self, cell: Cell, port: int) -> None:
        """Re-creates the cell's VTEP with another UDP port (neighbours, FDB, routes too)."""
        self.ip(cell.ns, "link", "del", self.VTEP)
        self._build_vtep(cell, port)

    def drop_vxlan(self, cell: Cell, port: int = 4789, tool: str = "nft") -> None:
        """A firewall on `cell` that drops incoming VXLAN: an nftables rule of its own table
        (tool "nft") or an iptables rule (Debian's iptables is the nftables backend)."""
        if tool == "nft":
            sh("ip", "netns", "exec", cell.ns, "nft", "-f", "-", input=(
                "table inet np_fault {\n"
                "  chain input {\n"
                "    type filter hook input priority 0; policy accept;\n"
                f"    udp dport {port} counter drop comment \"np fault\"\n"
                "  }\n"
                "}\n"))
        elif tool == "iptables":
            sh("ip", "netns", "exec", cell.ns, "iptables", "-A", "INPUT", "-p", "udp", "--dport",
               str(port), "-j", "DROP")
        else:
            raise ValueError(f"unknown firewall tool {tool!r}")

    def set_mtu(self, ns: str, dev: str, mtu: int) -> None:
        self.ip(ns, "link", "set", dev, "mtu", str(mtu))

    # ---- oracle: iproute2's own JSON ----
    def ip_json(self, ns: str, *args: str) -> Any:
        out = sh("ip", "-n", ns, "-j", *args).stdout
        return json.loads(out) if out.strip() else []

    def bridge_json(self, ns: str, *args: str) -> Any:
        out = sh("bridge", "-n", ns, "-j", *args).stdout
        return json.loads(out) if out.strip() else []


def netplay_bin() -> str:
    b = os.environ.get("NETPLAY_BIN")
    if not b or not os.access(b, os.X_OK):
        raise AssertionError(f"NETPLAY_BIN must name the built netplay binary (got {b!r})")
    return b


def run_playbook(text: str, *args: str, timeout: float = 120) -> tuple[int, dict | None, str, str]:
    """Writes `text` to a temp playbook, runs `netplay run PB --output json=FILE ARGS`.

    Returns (exit code, the JSON report or None, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="netplay-") as d:
        pb = os.path.join(d, "pb.yaml")
        rep = os.path.join(d, "report.json")
        with open(pb, "w") as f:
            f.write(text)
        p = subprocess.run([netplay_bin(), "run", pb, "--output", f"json={rep}", *args],
                           capture_output=True, text=True, timeout=timeout)
        report = None
        if os.path.exists(rep) and os.path.getsize(rep) > 0:
            with open(rep) as f:
                report = json.load(f)
        return p.returncode, report, p.stdout, p.stderr


def validate_playbook(text: str) -> tuple[int, str, str]:
    """`netplay validate PB` on `text`; returns (exit code, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="netplay-") as d:
        pb = os.path.join(d, "pb.yaml")
        with open(pb, "w") as f:
            f.write(text)
        p = subprocess.run([netplay_bin(), "validate", pb], capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr


def step_yaml(sid: str, uses: str, with_: dict, netns: str | None = None,
              expect: dict | None = None, extra: dict | None = None) -> str:
    """One step of a playbook's `steps:` list, as YAML text (JSON for the maps); `extra`
    adds step keys such as background, timeout or needs."""
    y = f"  - id: {sid}\n    uses: {uses}\n"
    if netns:
        y += f"    netns: {netns}\n"
    for k, v in (extra or {}).items():
        y += f"    {k}: {json.dumps(v)}\n"
    y += f"    with: {json.dumps(with_)}\n"
    if expect:
        y += f"    expect: {json.dumps(expect)}\n"
    return y


def playbook(steps_yaml: str, name: str = "lab-test") -> str:
    """A minimal playbook around an indented `steps:` body."""
    return (f"apiVersion: netplay/v1\nkind: Playbook\nmetadata: {{name: {name}}}\n"
            f"steps:\n{steps_yaml}")
