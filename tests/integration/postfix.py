"""Real Postfix on loopback for the transport tests.

One Postfix instance (its own config_directory, queue_directory and
data_directory in a temp dir) runs ``master -c DIR -d`` in the foreground, so
the test owns exactly one process to stop. Each MX is an ``smtpd`` service in
master.cf on its own loopback address and the shared test port, with
per-service ``-o`` overrides: its own host name, its own certificate, or no
STARTTLS at all. Postfix never delivers anything: relaying is refused and
there are no delivery agents.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.integration.pki import Leaf

POSTFIX_BINARIES = ("postfix", "postconf")
DAEMON_DIRECTORY = Path("/usr/lib/postfix/sbin")

# The helpers smtpd talks to while greeting, EHLO and STARTTLS; no delivery agents.
_HELPER_SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       trivial-rewrite
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
scache    unix  -       -       n       -       1       scache
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
error     unix  -       -       n       -       -       error
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    pass


@dataclass(frozen=True)
class SmtpService:
    """One MX: an smtpd on ``address``:port answering as ``hostname``."""

    address: str
    hostname: str
    #: The certificate it presents; None means no STARTTLS is offered.
    leaf: Leaf | None = None
    #: Put postscreen in front (at most one per instance): it greets with a
    #: multi-line "220-" banner, waits, then hands over to smtpd's "220 ".
    postscreen: bool = False


def postfix_available() -> bool:
    return all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in POSTFIX_BINARIES) \
        and (DAEMON_DIRECTORY / "master").exists()


class Postfix:
    def __init__(self, workdir: Path, port: int, services: Sequence[SmtpService]) -> None:
        """``workdir`` keeps the log; the instance lives in a fresh /tmp directory because
        the postfix user must be able to reach its queue (pytest's tmp dirs are 0700)."""
        self.logdir = Path(workdir)
        self.workdir = Path(tempfile.mkdtemp(prefix="postfix-test-"))
        self.workdir.chmod(0o755)
        self.port = port
        self.services = tuple(services)
        self.conf = self.workdir / "conf"
        self.queue = self.workdir / "queue"
        self.data = self.workdir / "data"
        self.certs = self.workdir / "certs"
        self.maillog = self.workdir / "maillog"
        self.proc: subprocess.Popen[bytes] | None = None

    def _main_cf(self, maillog: str) -> str:
        return "\n".join([
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue}",
            f"data_directory = {self.data}",
            "mail_owner = postfix",
            "myhostname = postfix-test.invalid",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            # The smtpd addresses come from master.cf; this only names our own addresses.
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            f"maillog_file = {maillog}",
            # Postfix refuses log files outside these prefixes (default /var, /dev/stdout).
            f"maillog_file_prefixes = {self.workdir}, /dev/stdout",
            "smtpd_banner = $myhostname ESMTP test server",
            # No DNS from Postfix: the test never leaves loopback.
            "smtpd_peername_lookup = no",
            "disable_dns_lookups = yes",
            "smtp_dns_support_level = disabled",
            "smtpd_relay_restrictions = reject",
            "smtpd_recipient_restrictions = reject",
            "smtpd_tls_loglevel = 1",
            "biff = no",
            "",
        ])

    def _master_cf(self) -> str:
        lines = []
        if sum(s.postscreen for s in self.services) > 1:
            raise PostfixError("one postscreen service per instance (one 'smtpd pass')")
        for svc in self.services:
            opts = [f"-o myhostname={svc.hostname}"]
            if svc.leaf is None:
                opts.append("-o smtpd_tls_security_level=none")
            else:
                chain, key = svc.leaf.write(self.certs, svc.hostname)
                opts += ["-o smtpd_tls_security_level=may",
                         f"-o smtpd_tls_chain_files={key},{chain}"]
            if svc.postscreen:
                # Loopback is in mynetworks, which postscreen would wave through
                # without the pregreet test: an empty access list makes it greet.
                lines.append(
                    f"{svc.address}:{self.port} inet n - n - 1 postscreen "
                    f"-o myhostname={svc.hostname} -o postscreen_access_list= "
                    "-o postscreen_greet_wait=1s -o postscreen_greet_action=enforce "
                    "-o { postscreen_greet_banner = $myhostname ESMTP postscreen } ")
                lines.append("smtpd pass - - n - - smtpd " + " ".join(opts))
                lines.append("dnsblog unix - - n - 0 dnsblog")
                lines.append("tlsproxy unix - - n - 0 tlsproxy")
                continue
            lines.append(f"{svc.address}:{self.port} inet n - n - - smtpd " + " ".join(opts))
        return "\n".join(lines) + "\n" + _HELPER_SERVICES

    def start(self, timeout: float = 20) -> Postfix:
        for d in (self.conf, self.queue, self.data, self.certs):
            d.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix", "postfix")
        (self.conf / "master.cf").write_text(self._master_cf())
        # `postfix check` creates the queue subdirectories with their owners and modes.
        # It logs through postlogd when maillog_file is a file, and postlogd is not
        # running yet, so it runs with logging to stdout.
        (self.conf / "main.cf").write_text(self._main_cf("/dev/stdout"))
        check = subprocess.run(["postfix", "-c", str(self.conf), "check"], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise PostfixError(f"postfix check failed: {check.stdout}{check.stderr}")
        (self.conf / "main.cf").write_text(self._main_cf(str(self.maillog)))
        self.proc = subprocess.Popen(
            [str(DAEMON_DIRECTORY / "master"), "-c", str(self.conf), "-d"],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # master signals its whole process group on exit: give it its own.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        pending = [s.address for s in self.services]
        while pending:
            if self.proc.poll() is not None:
                raise PostfixError(f"postfix master exited with {self.proc.returncode}\n"
                                   f"{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PostfixError(f"smtpd not listening on {pending}\n{self.log()}")
            pending = [a for a in pending if not self._ready(a)]
            if pending:
                time.sleep(0.1)
        return self

    def _ready(self, address: str) -> bool:
        svc = next(s for s in self.services if s.address == address)
        if svc.postscreen:
            # Only connect: talking (even QUIT) before postscreen's greeting ends
            # would be logged as PREGREET, and waiting would whitelist us.
            try:
                with socket.create_connection((address, self.port), timeout=2):
                    return True
            except OSError:
                return False
        return self._greets(address)

    def _greets(self, address: str) -> bool:
        """True when a connection gets the 220 banner (smtpd is really up)."""
        try:
            with socket.create_connection((address, self.port), timeout=2) as s:
                s.settimeout(5)
                ok = s.recv(512).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def log(self) -> str:
        for path in (self.maillog, self.logdir / "maillog"):
            try:
                return path.read_text(errors="replace")
            except OSError:
                continue
        return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGTERM makes master stop its children and exit.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        self.logdir.mkdir(parents=True, exist_ok=True)
        (self.logdir / "maillog").write_text(self.log())
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
