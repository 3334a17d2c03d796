"""Real DNS servers on loopback for integration tests: Knot, rbldnsd and unbound.

The exporter is pointed at unbound, exactly as the README tells users to run
it; unbound is stub-zoned to Knot (ordinary and DNSSEC-signed zones, reverse
zones) and to rbldnsd (blocklists), and to a "silent" port where a socket
receives and never answers (a dead blocklist). Nothing may ever leave
loopback: unbound answers everything outside the stubs from a static root
zone and may not send a query to any address outside 127.0.0.0/8.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

#: Which Debian package provides each binary the stack runs.
PACKAGES = {
    "knotd": "knot",
    "knotc": "knot",
    "keymgr": "knot",
    "kdig": "knot-dnsutils",
    "rbldnsd": "rbldnsd",
    "unbound": "unbound",
    "unbound-control": "unbound",
    "unbound-checkconf": "unbound",
    "postfix": "postfix",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "dnsperf": "dnsperf",
    "ldns-signzone": "ldnsutils",
    "openssl": "openssl",
}

#: Binaries DnsStack itself needs.
STACK_BINARIES = ("knotd", "knotc", "rbldnsd", "unbound", "unbound-control", "unbound-checkconf")

#: Every IPv4 network except 127.0.0.0/8, so unbound can query only loopback.
NOT_LOOPBACK_V4 = (
    "0.0.0.0/2",
    "64.0.0.0/3",
    "96.0.0.0/4",
    "112.0.0.0/5",
    "120.0.0.0/6",
    "124.0.0.0/7",
    "126.0.0.0/8",
    "128.0.0.0/1",
)

#: Default TTL for the test data: short, so the exporter's own cache (which a
#: test cannot flush) forgets a rewritten zone within seconds.
TEST_TTL = 5

_READY_TIMEOUT = 10.0
_SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")


def which(name: str) -> str | None:
    """Find a binary, also in sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    path = os.pathsep.join((os.environ.get("PATH", ""), *_SEARCH_PATH))
    return shutil.which(name, path=path)


def _binary(name: str) -> str:
    found = which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (Debian package {PACKAGES.get(name, name)})")
    return found


def require_binaries(*names: str) -> None:
    """Fail loudly in CI (CI=true) when a server binary is missing; skip elsewhere.

    A CI run that silently skips every integration test would be green and
    meaningless, so there a missing package is an error.
    """
    missing = [n for n in names if which(n) is None]
    if not missing:
        return
    packages = sorted({PACKAGES.get(n, n) for n in missing})
    reason = (
        f"missing binaries {', '.join(missing)}: install the Debian packages "
        f"{' '.join(packages)} (scripts/install-system-deps.sh)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free for both UDP and TCP, below the ephemeral range.

    Below 32768 so an outgoing socket of some daemon cannot grab it between
    our check and the daemon's bind; never the same port twice per process.
    """
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(20000, 32000)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def _unprivileged_user() -> str:
    import pwd

    for user in ("rbldns", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise StackError("no unprivileged user (rbldns or nobody) to run rbldnsd as")


@dataclass
class Zone:
    """A zone Knot serves. ``text`` is relative to ``$ORIGIN name``."""

    name: str
    text: str
    #: Knot signs it (automatic DNSSEC); unbound gets its DS as trust anchor.
    signed: bool = False


@dataclass
class Blocklist:
    """A zone rbldnsd serves: one or more datasets, e.g. ``[("ip4set", "...")]``."""

    zone: str
    datasets: list[tuple[str, str]]


def _fqdn(name: str) -> str:
    return name.strip().rstrip(".").lower() + "."


def zone_file_text(zone: Zone, serial: int) -> str:
    """The zone file Knot loads: the given body plus $ORIGIN/$TTL/SOA/NS if absent."""
    origin = _fqdn(zone.name)
    lines = zone.text.splitlines()
    head: list[str] = []
    if not any(line.strip().upper().startswith("$ORIGIN") for line in lines):
        head.append(f"$ORIGIN {origin}")
    if not any(line.strip().upper().startswith("$TTL") for line in lines):
        head.append(f"$TTL {TEST_TTL}")
    body = "\n".join(_strip_comment(line) for line in lines)
    if not re.search(r"(^|\s)SOA(\s|$)", body, re.IGNORECASE | re.MULTILINE):
        # Refresh/retry/expire are irrelevant (no secondaries); the minimum is
        # the negative TTL, kept short like every other TTL here.
        head.append(f"@ SOA localhost. hostmaster.{origin} {serial} 60 60 600 {TEST_TTL}")
    apex_ns = re.compile(r"^(@|[ \t])[^;\n]*\sNS\s", re.IGNORECASE | re.MULTILINE)
    if not apex_ns.search("\n".join(lines)):
        # An out-of-zone name needs no glue; unbound uses the stub address anyway.
        head.append("@ NS localhost.")
    return "\n".join([*head, zone.text, ""])


def _strip_comment(line: str) -> str:
    return line.split(";", 1)[0]


def blocklist_dataset_text(bl: Blocklist, index: int, text: str) -> str:
    """A dataset file; the first one gets $SOA/$NS so negative answers carry a short TTL."""
    if index > 0 or "$SOA" in text:
        return text if text.endswith("\n") else text + "\n"
    origin = _fqdn(bl.zone)
    head = f"$SOA {TEST_TTL} localhost. hostmaster.{origin} 1 60 60 600 {TEST_TTL}\n"
    head += f"$NS {TEST_TTL} localhost.\n"
    return head + text + ("" if text.endswith("\n") else "\n")


class _Daemon:
    """One server process with its log file."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in pytest must not kill it half-way
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.proc = None


class StackError(RuntimeError):
    """A server did not come up; the message carries its log."""


class DnsStack:
    """Knot + rbldnsd + unbound on loopback, each on its own free port."""

    resolver_host: str = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        zones: Sequence[Zone] = (),
        blocklists: Sequence[Blocklist] = (),
        silent_zones: Sequence[str] = (),
        extra_trust_anchors: Sequence[str] = (),
    ) -> None:
        """``extra_trust_anchors``: more ``trust-anchor:`` lines for unbound (e.g. a
        wrong DS for an unsigned zone, to see validation fail)."""
        self.workdir = Path(workdir)
        self.zones = {_fqdn(z.name): z for z in zones}
        self.blocklists = {_fqdn(b.zone): b for b in blocklists}
        self.silent_zones = tuple(_fqdn(z) for z in silent_zones)
        self.extra_trust_anchors = tuple(extra_trust_anchors)
        self.resolver_port = free_port()
        self.knot_port = free_port()
        self.rbldnsd_port = free_port()
        self.silent_port = free_port()
        self._serial = int(time.time())
        self._anchors: dict[str, str] = {}
        self._silent: list[socket.socket] = []
        self._knot: _Daemon | None = None
        self._rbldnsd: _Daemon | None = None
        self._unbound: _Daemon | None = None
        self._started = False
        for sub in ("knot", "knot/zones", "knot/db", "rbldnsd", "unbound"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._unbound_conf = self.workdir / "unbound" / "unbound.conf"
        self._rbldnsd_dir = self.workdir / "rbldnsd"
        self._rbldnsd_tmp: Path | None = None
        if os.geteuid() == 0 and self.blocklists:
            self._rbldnsd_tmp = Path(tempfile.mkdtemp(prefix="stack-rbldnsd-"))
            self._rbldnsd_tmp.chmod(0o755)
            self._rbldnsd_dir = self._rbldnsd_tmp
        self._knot_conf = self.workdir / "knot" / "knot.conf"

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start every server and wait until each answers; raise with its log if not."""
        atexit.register(self.stop)
        self._started = True
        try:
            self._open_silent()
            if self.zones:
                self._start_knot()
            if self.blocklists:
                self.start_rbldnsd()
            self._start_unbound()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill every server (idempotent; also run at exit)."""
        for daemon in (self._unbound, self._rbldnsd, self._knot):
            if daemon is not None:
                daemon.stop()
        for s in self._silent:
            s.close()
        self._silent.clear()
        if self._rbldnsd_tmp is not None:
            shutil.rmtree(self._rbldnsd_tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> DnsStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- silent

    def _open_silent(self) -> None:
        """A UDP socket nobody reads and a TCP listener nobody accepts on.

        Queries to it are received by the kernel and never answered, and no
        ICMP "port unreachable" comes back: exactly a blocklist that died.
        """
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", self.silent_port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", self.silent_port))
        tcp.listen(64)
        self._silent = [udp, tcp]

    # ------------------------------------------------------------------ knot

    def _knot_config(self) -> str:
        d = self.workdir / "knot"
        zones = []
        for name, zone in self.zones.items():
            entry = f"  - domain: {name}\n"
            if zone.signed:
                entry += "    dnssec-signing: on\n    dnssec-policy: test\n"
            zones.append(entry)
        return f"""\
server:
    rundir: "{d}"
    listen: 127.0.0.1@{self.knot_port}
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1

control:
    listen: "{d}/knot.sock"

log:
  - target: "{d}/knot.log"
    any: info

database:
    storage: "{d}/db"

policy:
  - id: test
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    dnskey-ttl: {TEST_TTL}
    zone-max-ttl: 3600
    propagation-delay: 0
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
    nsec3: off
    cds-cdnskey-publish: none

template:
  - id: default
    storage: "{d}/zones"
    file: "%s.zone"
    # Never write the (signed) zone back over our source files, and reload a
    # rewritten file as a difference so signing continues incrementally.
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    serial-policy: unixtime

zone:
{"".join(zones)}"""

    def _write_zone(self, zone: Zone) -> None:
        self._serial += 1
        path = self.workdir / "knot" / "zones" / f"{_fqdn(zone.name)}zone"
        path.write_text(zone_file_text(zone, self._serial))

    def _start_knot(self) -> None:
        for zone in self.zones.values():
            self._write_zone(zone)
        self._knot_conf.write_text(self._knot_config())
        d = self.workdir / "knot"
        self._knot = _Daemon(
            "knotd", [_binary("knotd"), "-c", str(self._knot_conf)], d / "knotd.out", d
        )
        self._knot.start()
        for name, zone in self.zones.items():
            rdtype = "DNSKEY" if zone.signed else "SOA"
            self._wait_answer(self._knot, name, rdtype, self.knot_port, want_records=True)
            if zone.signed:
                self._anchors[name] = self._ds_of(name)

    def _ds_of(self, zone: str) -> str:
        """The DS of the zone's KSK, read from Knot: what the parent would publish."""
        q = dns.message.make_query(zone, "DNSKEY", want_dnssec=True)
        r = dns.query.udp(q, "127.0.0.1", port=self.knot_port, timeout=2)
        rrset = r.get_rrset(
            r.answer, dns.name.from_text(zone), dns.rdataclass.IN, dns.rdatatype.DNSKEY
        )
        if rrset is None:
            raise StackError(f"knot serves no DNSKEY for {zone}\n{self._knot_log()}")
        ksks = [k for k in rrset if k.flags & 0x0001]  # the SEP bit: key-signing key
        if not ksks:
            raise StackError(f"no KSK in the DNSKEY set of {zone}")
        name = dns.name.from_text(zone)
        return "\n".join(
            f"{zone} DS {dns.dnssec.make_ds(name, k, 'SHA256').to_text()}" for k in ksks
        )

    def _knot_log(self) -> str:
        parts = []
        for p in (self.workdir / "knot" / "knot.log", self.workdir / "knot" / "knotd.out"):
            with contextlib.suppress(OSError):
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)[-6000:]

    def knotc(self, *args: str) -> str:
        """Run knotc against our knotd; raise with its output on failure."""
        res = subprocess.run(
            [_binary("knotc"), "-c", str(self._knot_conf), "-b", "-t", "10", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            raise StackError(f"knotc {' '.join(args)} failed: {res.stdout}{res.stderr}")
        return res.stdout

    def update_zone(self, zone: Zone) -> None:
        """Rewrite a zone, have Knot reload it, and flush unbound's cache for it."""
        name = _fqdn(zone.name)
        if name not in self.zones:
            raise KeyError(f"{zone.name} is not a zone of this stack")
        if zone.signed != self.zones[name].signed:
            raise ValueError("update_zone cannot switch signing on or off")
        self.zones[name] = zone
        self._write_zone(zone)
        self.knotc("zone-reload", name)
        self._flush(name)

    # --------------------------------------------------------------- rbldnsd

    def _rbldnsd_argv(self) -> list[str]:
        d = self._rbldnsd_dir
        argv = [
            _binary("rbldnsd"),
            "-n",  # foreground: we own the process
            "-b", f"127.0.0.1/{self.rbldnsd_port}",
            "-w", str(d),
            "-t", str(TEST_TTL),
            "-c", "1",  # look for changed data files every second
            "-p", str(d / "rbldnsd.pid"),
        ]  # fmt: skip
        if os.geteuid() == 0:
            # rbldnsd refuses to run as root; its data then lives in a
            # world-readable dir of its own (pytest's tmp dirs are 0700).
            argv += ["-u", _unprivileged_user()]
        for zone, bl in self.blocklists.items():
            files = []
            for i, (dtype, _text) in enumerate(bl.datasets):
                files.append((dtype, f"{zone}{i}.{dtype}"))
            for dtype, fname in files:
                argv.append(f"{zone.rstrip('.')}:{dtype}:{fname}")
        return argv

    def _write_blocklist(self, bl: Blocklist) -> None:
        zone = _fqdn(bl.zone)
        d = self._rbldnsd_dir
        for i, (dtype, text) in enumerate(bl.datasets):
            path = d / f"{zone}{i}.{dtype}"
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(blocklist_dataset_text(bl, i, text))
            tmp.chmod(0o644)
            # rbldnsd notices changes by mtime: make sure it moves even when
            # two rewrites fall within the same second.
            old = path.stat().st_mtime if path.exists() else 0.0
            os.replace(tmp, path)
            new = max(time.time(), old + 1.0)
            os.utime(path, (new, new))

    def start_rbldnsd(self) -> None:
        """(Re)start rbldnsd on its port and wait until it answers."""
        if self._rbldnsd is not None and self._rbldnsd.running():
            return
        for bl in self.blocklists.values():
            self._write_blocklist(bl)
        d = self.workdir / "rbldnsd"
        log = self.workdir / "rbldnsd" / "rbldnsd.log"
        self._rbldnsd = _Daemon("rbldnsd", self._rbldnsd_argv(), log, d)
        self._rbldnsd.start()
        for zone in self.blocklists:
            self._wait_answer(self._rbldnsd, zone, "SOA", self.rbldnsd_port, want_records=True)
        if self._unbound is not None:
            for zone in self.blocklists:
                self._flush(zone)

    def stop_rbldnsd(self) -> None:
        """Stop rbldnsd: its port then refuses (ICMP), and unbound SERVFAILs its zones."""
        if self._rbldnsd is not None:
            self._rbldnsd.stop()
        if self._unbound is not None:
            for zone in self.blocklists:
                self._flush(zone)

    def update_blocklist(self, bl: Blocklist) -> None:
        """Rewrite a blocklist's datasets, wait until rbldnsd serves them, flush unbound."""
        zone = _fqdn(bl.zone)
        old = self.blocklists.get(zone)
        if old is None:
            raise KeyError(f"{bl.zone} is not a blocklist of this stack")
        if [t for t, _ in old.datasets] != [t for t, _ in bl.datasets]:
            raise ValueError("update_blocklist must keep the same dataset types")
        self.blocklists[zone] = bl
        running = self._rbldnsd is not None and self._rbldnsd.running()
        # Count before writing: rbldnsd may notice the new mtime by itself at once.
        before = self._rbldnsd.log().count("zones reloaded") if self._rbldnsd else 0
        self._write_blocklist(bl)
        if running and self._rbldnsd is not None and self._rbldnsd.proc is not None:
            self._rbldnsd.proc.send_signal(signal.SIGHUP)
            self._wait_rbldnsd_reload(before)
        self._flush(zone)

    def _wait_rbldnsd_reload(self, before: int) -> None:
        """rbldnsd logs a line per (re)load; wait for one more than ``before``."""
        assert self._rbldnsd is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._rbldnsd.log().count("zones reloaded") > before:
                return
            time.sleep(0.05)
        raise StackError(f"rbldnsd did not reload\n{self._rbldnsd.log()[-4000:]}")

    # --------------------------------------------------------------- unbound

    def trust_anchor(self, zone: str) -> str:
        """The DS record(s) unbound was given as trust anchor for a signed zone."""
        return self._anchors[_fqdn(zone)]

    def _stubs(self) -> list[tuple[str, int]]:
        stubs = [(z, self.knot_port) for z in self.zones]
        stubs += [(z, self.rbldnsd_port) for z in self.blocklists]
        stubs += [(z, self.silent_port) for z in self.silent_zones]
        return stubs

    def _unbound_config(self) -> str:
        d = self.workdir / "unbound"
        lines = [
            "server:",
            f'    directory: "{d}"',
            f'    pidfile: "{d}/unbound.pid"',
            f'    logfile: "{d}/unbound.log"',
            '    chroot: ""',
            '    username: ""',
            "    use-syslog: no",
            "    verbosity: 1",
            "    log-servfail: yes",
            "    log-local-actions: yes",
            "    val-log-level: 2",
            f"    interface: 127.0.0.1@{self.resolver_port}",
            f"    port: {self.resolver_port}",
            "    do-ip4: yes",
            "    do-ip6: no",
            "    do-udp: yes",
            "    do-tcp: yes",
            "    num-threads: 1",
            "    so-reuseport: no",
            "    access-control: 127.0.0.0/8 allow",
            "    do-not-query-localhost: no",
            *(f"    do-not-query-address: {net}" for net in NOT_LOOPBACK_V4),
            "    do-not-query-address: ::/0",
            "    qname-minimisation: no",
            "    module-config: \"validator iterator\"",
            # Real validation: no root anchor, only the test zones' own DS.
            "    harden-dnssec-stripped: yes",
            "    harden-below-nxdomain: yes",
            "    val-permissive-mode: no",
            "    val-bogus-ttl: 1",
            "    trust-anchor-signaling: no",
            "    root-key-sentinel: no",
            "    aggressive-nsec: no",
            "    prefetch: no",
            "    serve-expired: no",
            # Short caches: a rewritten zone shows within seconds even unflushed.
            f"    cache-max-ttl: {TEST_TTL}",
            f"    cache-max-negative-ttl: {TEST_TTL}",
            "    infra-host-ttl: 5",
            "    infra-keep-probing: yes",
            # Answer everything outside the stubs locally: NXDOMAIN, no recursion.
            '    local-zone: "." static',
        ]
        for zone, _port in self._stubs():
            # Also replaces unbound's default RFC 6303 zones (2.0.192.in-addr.arpa, ...).
            lines.append(f'    local-zone: "{zone}" transparent')
        for anchor in self._anchors.values():
            for line in anchor.splitlines():
                lines.append(f'    trust-anchor: "{line}"')
        for anchor in self.extra_trust_anchors:
            lines.append(f'    trust-anchor: "{anchor}"')
        lines += [
            "",
            "remote-control:",
            "    control-enable: yes",
            f'    control-interface: "{d}/control.sock"',
            "    control-use-cert: no",
            "",
        ]
        for zone, port in self._stubs():
            lines += ["stub-zone:", f'    name: "{zone}"', f"    stub-addr: 127.0.0.1@{port}", ""]
        return "\n".join(lines)

    def _start_unbound(self) -> None:
        self._unbound_conf.write_text(self._unbound_config())
        check = subprocess.run(
            [_binary("unbound-checkconf"), str(self._unbound_conf)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise StackError(f"unbound config invalid: {check.stdout}{check.stderr}")
        d = self.workdir / "unbound"
        argv = [_binary("unbound"), "-d", "-c", str(self._unbound_conf)]
        self._unbound = _Daemon("unbound", argv, d / "unbound.out", d)
        self._unbound.start()
        # The static root answers at once: it shows unbound is serving.
        self._wait_answer(self._unbound, "ready.invalid.", "A", self.resolver_port)

    def unbound_control(self, *args: str) -> str:
        res = subprocess.run(
            [_binary("unbound-control"), "-c", str(self._unbound_conf), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            raise StackError(f"unbound-control {' '.join(args)} failed: {res.stdout}{res.stderr}")
        return res.stdout

    def _flush(self, zone: str) -> None:
        if self._unbound is None or not self._unbound.running():
            return
        self.unbound_control("flush_zone", zone)
        self.unbound_control("flush_bogus")
        self.unbound_control("flush_negative")
        self.unbound_control("flush_requestlist")
        # Forget that a server was down, so a restarted rbldnsd is asked again.
        self.unbound_control("flush_infra", "all")

    def unbound_log(self) -> str:
        """unbound's log file (local actions, SERVFAIL reasons, validation failures)."""
        try:
            return (self.workdir / "unbound" / "unbound.log").read_text(errors="replace")
        except OSError:
            return ""

    # ----------------------------------------------------------------- query

    def query(
        self, name: str, rdtype: str, *, dnssec: bool = False, timeout: float = 3.0
    ) -> dns.message.Message:
        """Ask unbound (as the exporter would); raises dns.exception.Timeout."""
        q = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
        q.flags |= dns.flags.AD
        return dns.query.udp(q, self.resolver_host, port=self.resolver_port, timeout=timeout)

    def query_direct(
        self, port: int, name: str, rdtype: str, *, timeout: float = 2.0
    ) -> dns.message.Message:
        """Ask one of the authoritative servers directly (knot_port, rbldnsd_port, ...)."""
        q = dns.message.make_query(name, rdtype)
        q.flags &= ~dns.flags.RD
        return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)

    def _wait_answer(
        self,
        daemon: _Daemon,
        name: str,
        rdtype: str,
        port: int,
        *,
        want_records: bool = False,
    ) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if not daemon.running():
                raise StackError(f"{daemon.name} exited\n{self._daemon_log(daemon)}")
            try:
                q = dns.message.make_query(name, rdtype)
                r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
            except (dns.exception.Timeout, OSError) as exc:
                last = repr(exc)
                time.sleep(0.05)
                continue
            if not want_records or r.answer:
                return
            last = f"rcode {r.rcode()} without records for {name} {rdtype}"
            time.sleep(0.1)
        raise StackError(
            f"{daemon.name} not ready after {_READY_TIMEOUT}s ({last})\n{self._daemon_log(daemon)}"
        )

    def _daemon_log(self, daemon: _Daemon) -> str:
        if daemon.name == "knotd":
            return self._knot_log()
        text = daemon.log()
        if daemon.name == "unbound":
            with contextlib.suppress(OSError):
                text += (self.workdir / "unbound" / "unbound.log").read_text(errors="replace")
        return text[-6000:]

    def logs(self) -> str:
        """Every server's log, for a failing test's message."""
        out = []
        for daemon in (self._knot, self._rbldnsd, self._unbound):
            if daemon is not None:
                out.append(f"--- {daemon.name} ---\n{self._daemon_log(daemon)}")
        return "\n".join(out)


def rrset_texts(msg: dns.message.Message, rdtype: str) -> list[str]:
    """The RDATA texts of every answer RRset of a type (for assertions)."""
    t = dns.rdatatype.from_text(rdtype)
    out: list[str] = []
    for rrset in msg.answer:
        if rrset.rdtype == t:
            out += [rd.to_text() for rd in rrset]
    return sorted(out)
