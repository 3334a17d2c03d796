"""A lean DNS-over-UDP client for the hot path: one socket, many questions in flight.

Why not dnspython for everything: building and parsing a message with it
costs about 0.75 ms of CPU, which caps a blocklist cycle near 1,300 lookups a
second. Here a question is a few bytes joined together and the common answers
(A and TXT, positive or negative) are read straight from the wire. Anything
unusual (a CNAME chain, another record type, a truncated answer) is handed to
dnspython, so correctness never depends on the shortcut.

Answers are matched on query ID *and* question: an ID freed by one question
and reused at once must not pick up a late duplicate answer to the old one.
A silent server is retried (the resolver or rbldnsd may drop bursts), and
the socket asks for a large receive buffer because rbldnsd answers faster
than a small one drains.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message

from exporter.dns import Answer, Outcome, answer_from_message
from exporter.flight import background

_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
          "TLSA": 52, "CAA": 257, "DNSKEY": 48, "DS": 43}
_A, _CNAME, _SOA, _TXT = 1, 5, 6, 16
_RCODE_NOERROR, _RCODE_SERVFAIL, _RCODE_NXDOMAIN, _RCODE_REFUSED = 0, 2, 3, 5
#: RD and AD: recursion, and tell us whether the validating resolver authenticated the data.
_FLAGS = 0x0120
#: An EDNS0 OPT record advertising 1232-byte answers (the DNS flag day 2020 size).
_OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
#: Types asked without EDNS. Blocklist and mail-host A answers are a few records; one
#: over 512 bytes comes back truncated and is asked again over TCP. EDNS on every
#: blocklist question cost unbound 15-25 % of its cold throughput in ``bench.dnsbl``
#: (dnsperf with and without ``-e``). The AD bit is a header flag and is asked for
#: either way (RFC 6840 §5.7); no check reads it from A answers.
_PLAIN_TYPES = frozenset({"A"})
log = logging.getLogger("exporter.dns_wire")

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_U32 = struct.Struct("!I")
#: ``Answer``'s own ``__new__`` is a Python function; the hot path fills the tuple directly
#: (all eight fields: the assertion keeps the two in step).
_new_answer = tuple.__new__
assert len(Answer._fields) == 8
_OK, _NXDOMAIN, _NODATA = Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA
_RECEIVE_BUFFER = 8 * 1024 * 1024
#: We advertise 1232-byte answers (512 without EDNS); a larger datagram is cut short and
#: then fails to parse (an error, retried). recv(65535) allocated 64 KiB per datagram.
_MAX_DATAGRAM = 4096
#: The length octet of every legal label.
_LABEL_LENGTHS = [bytes((n,)) for n in range(64)]
#: A name is at most 255 octets on the wire, the root label's one included.
_MAX_LABELS_WIRE = 254
#: The root label, QTYPE and QCLASS IN, per type.
_QUESTION_TAILS = {name: b"\x00" + struct.pack("!HH", code, 1) for name, code in _TYPES.items()}
#: The tail of an A question (QTYPE A, QCLASS IN), for the inline path of ``send``.
_A_TAIL = _QUESTION_TAILS["A"]
_MAX_TTL = 86400
_MIN_NEGATIVE_TTL = 5


def enlarge_receive_buffer(sock: socket.socket) -> None:
    """Ask for an 8 MiB receive buffer: a window of answers arriving at once must not
    overflow it. SO_RCVBUFFORCE first (it passes the system's limit, for root), then
    SO_RCVBUF (capped by net.core.rmem_max); neither failing is fatal."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _RECEIVE_BUFFER)
            return
        except OSError:
            continue


def labels_wire(name: str) -> bytes | None:
    """A name's labels on the wire, length-prefixed, without the root label; None when
    it is not plain ASCII within the limits (dnspython then handles IDNA and errors).

    Joined labels are labels too: ``labels_wire("a") + labels_wire("b.c")`` is the
    wire form of ``a.b.c``, which lets a caller cache the parts it repeats.
    """
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not raw:
        return b""
    labels = raw.split(b".")
    try:
        wire = b"".join([_LABEL_LENGTHS[len(label)] + label for label in labels])
    except IndexError:  # a label longer than 63 octets
        return None
    if b"" in labels or len(wire) > _MAX_LABELS_WIRE:
        return None
    return wire


def question_wire(qname: str, rdtype: str, labels: bytes | None = None) -> bytes | None:
    """QNAME, QTYPE and QCLASS on the wire, or None for what only dnspython should build.

    ``labels`` is ``labels_wire(qname)`` when the caller already has it.
    """
    tail = _QUESTION_TAILS.get(rdtype)
    if tail is None:
        return None
    if labels is None:
        labels = labels_wire(qname)
        if labels is None:
            return None
    elif len(labels) > _MAX_LABELS_WIRE:
        return None
    return labels + tail


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1


def _txt_strings(rdata: bytes) -> str:
    out = bytearray()
    pos = 0
    while pos < len(rdata):
        n = rdata[pos]
        out += rdata[pos + 1: pos + 1 + n]
        pos += 1 + n
    return out.decode("utf-8", "replace")


def parse_fast(data: bytes, qlen: int, qname: str, rdtype: str, code: int) -> Answer | None:
    """Read an answer straight from the wire; None when dnspython should read it instead.

    A blocklist cycle reads 200,000 of these, nearly all NXDOMAIN, so the
    negative path is kept short: no list, no name walk when the owner name is
    the usual compression pointer, and the answer built without a Python-level
    ``__new__``.
    """
    flags = (data[2] << 8) | data[3]
    rcode = flags & 0x000F
    authenticated = bool(flags & 0x0020)
    if rcode == _RCODE_SERVFAIL:
        return Answer(qname, rdtype, Outcome.SERVFAIL, detail="SERVFAIL")
    if rcode == _RCODE_REFUSED:
        return Answer(qname, rdtype, Outcome.REFUSED, detail="REFUSED")
    if (rcode != _RCODE_NOERROR and rcode != _RCODE_NXDOMAIN) or (code != _A and code != _TXT):
        return None
    pos = 12 + qlen
    ancount = (data[6] << 8) | data[7]
    if ancount:
        records: list[str] = []
        ttl = _MAX_TTL
        for _ in range(ancount):
            pos = pos + 2 if data[pos] >= 0xC0 else _skip_name(data, pos)
            rtype, rclass, rttl, rdlen = _RR.unpack_from(data, pos)
            pos += 10
            if rtype == _CNAME:
                return None  # follow chains with the full parser
            if rtype == code and rclass == 1:
                rdata = data[pos: pos + rdlen]
                if code == _A:
                    if rdlen != 4 or len(rdata) != 4:
                        return None  # short or odd: let the full parser judge it
                    records.append(socket.inet_ntoa(rdata))
                else:
                    records.append(_txt_strings(rdata))
                ttl = min(ttl, rttl)
            pos += rdlen
        if records:
            return _new_answer(Answer, (qname, rdtype, _OK, tuple(sorted(set(records))), ttl,
                                        authenticated, qname, ""))
    negative_ttl = _MIN_NEGATIVE_TTL * 6
    for _ in range((data[8] << 8) | data[9]):
        pos = pos + 2 if data[pos] >= 0xC0 else _skip_name(data, pos)
        rtype, _, rttl, rdlen = _RR.unpack_from(data, pos)
        pos += 10
        if rtype == _SOA and rdlen >= 20:
            minimum = _U32.unpack_from(data, pos + rdlen - 4)[0]
            # max(_MIN_NEGATIVE_TTL, min(rttl, minimum, _MAX_TTL)), without three calls
            negative_ttl = rttl if rttl < minimum else minimum
            if negative_ttl > _MAX_TTL:
                negative_ttl = _MAX_TTL
            elif negative_ttl < _MIN_NEGATIVE_TTL:
                negative_ttl = _MIN_NEGATIVE_TTL
            break
        pos += rdlen
    outcome = _NXDOMAIN if rcode == _RCODE_NXDOMAIN else _NODATA
    return _new_answer(Answer, (qname, rdtype, outcome, (), negative_ttl, authenticated, qname,
                                ""))


class WireQuestion(Protocol):
    """A question as the client keeps it while it is on the wire or waiting for its turn.

    The asker's own object carries these fields (the resolver's in-flight entry
    does), so sending a question allocates no record of the client's own.
    Calling it delivers the answer (or the timeout), once; it must not raise.
    """

    qname: str
    rdtype: str
    #: QNAME, QTYPE and QCLASS on the wire; set by the client.
    question: bytes
    #: The whole datagram, ID in the first two bytes; built when the question is sent.
    packet: bytes
    #: Tries spent so far; which server the next one goes to.
    attempt: int
    deadline: float

    def __call__(self, answer: Answer) -> None: ...


class _Callback:
    """A question asked with a plain callback (``DatagramClient.submit``)."""

    __slots__ = ("attempt", "deadline", "done", "packet", "qname", "question", "rdtype")

    def __init__(self, done: Callable[[Answer], None], qname: str, rdtype: str,
                 attempt: int) -> None:
        self.done = done
        self.qname = qname
        self.rdtype = rdtype
        self.attempt = attempt
        self.question = self.packet = b""
        self.deadline = 0.0

    def __call__(self, answer: Answer) -> None:
        self.done(answer)


class DatagramClient:
    """One UDP socket; questions multiplexed by ID; retries; TCP when answers are truncated.

    Questions are submitted with a callback rather than awaited one coroutine
    each: a blocklist cycle asks hundreds of thousands, and a task, a future
    and a timer per question were most of its CPU. At most ``window`` are on
    the wire at once (a burst larger than the resolver's buffers is a burst of
    drops); the rest wait in order. One sweep timer, not a timer per question,
    retransmits or times out what went unanswered.

    The socket is read directly (``add_reader``) and drained completely on each
    wake-up: asyncio's datagram transport reads one datagram per loop iteration,
    and with ten thousand runs in flight an iteration can take a second, so
    answers would wait in the socket until their questions timed out.

    With one server the socket is connected to it: the kernel then drops
    datagrams from anyone else, and ``send`` skips parsing an address per packet.
    """

    #: Datagrams read per wake-up at most, so one flood cannot starve the loop.
    DRAIN_LIMIT = 4096

    def __init__(self, servers: tuple[str, ...], port: int, timeout: float, attempts: int,
                 window: int = 256) -> None:
        self.servers = servers
        self.port = port
        self.timeout = timeout
        self.attempts = attempts
        self.window = max(1, window)
        self._addresses = tuple((server, port) for server in servers)
        self._pending: dict[int, WireQuestion] = {}
        self._waiting: deque[WireQuestion] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        #: How late a timeout may fire: a fraction of the timeout, so one timer serves many.
        self._tick = max(0.01, timeout / 8)
        self._sock: socket.socket | None = None
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the socket ---------------------------------------------------------

    def _open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.servers[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        enlarge_receive_buffer(sock)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        if len(self._addresses) == 1:
            # Answers must then come from the address asked, as dnspython requires too.
            try:
                sock.connect(self._addresses[0])
                self._connected = True
            except OSError:  # no route yet: send per packet, and let retries decide
                self._connected = False
        loop.add_reader(sock.fileno(), self._drain)
        self._sock = sock

    def poll(self) -> None:
        """Read the answers that have arrived and send the questions their slots free,
        now, without waiting for the event loop to get round to the socket.

        For a caller in a long stretch of work (building a batch's questions, or
        its report): with a window of 64, a resolver's queue empties in a few
        milliseconds, and a stretch that long left it idle until the loop came back
        (a cold unbound sat idle 17 % of a cycle at 64). Answers are delivered to
        their callbacks from inside the caller's stretch, so a caller must not hold
        state a delivery could change (the cache, the in-flight table) across it.
        """
        self._drain()

    def _drain(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(self.DRAIN_LIMIT):
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP unreachable and friends cannot be tied to one question:
                # the retries and timeouts decide.
                continue
            self._receive(data)
        self._send_waiting()

    def _receive(self, data: bytes) -> None:
        if len(data) < 12:
            return
        ident = (data[0] << 8) | data[1]
        pending = self._pending.get(ident)
        if pending is None:
            return
        question = pending.question
        qlen = len(question)
        echoed = data[12:12 + qlen]
        # Servers echo the question as sent; compare case-blind only when they did not.
        if (echoed != question and echoed.lower() != question.lower()) or not data[2] & 0x80:
            return  # a late answer to an earlier question that had this ID
        del self._pending[ident]
        if data[2] & 0x02:  # TC: ask again over TCP
            background(self._tcp(pending))
            return
        qname, rdtype = pending.qname, pending.rdtype
        try:
            answer = parse_fast(data, qlen, qname, rdtype, _TYPES[rdtype])
            if answer is None:
                answer = answer_from_message(qname, rdtype, dns.message.from_wire(data))
        except (dns.exception.DNSException, struct.error, IndexError, ValueError,
                OSError) as exc:
            answer = Answer(qname, rdtype, Outcome.SERVFAIL, detail=f"malformed answer: {exc}")
        try:  # _deliver, inline: this runs once per answer
            pending(answer)
        except Exception:
            log.exception("answer callback for %s %s failed", rdtype, qname)

    # -- questions ----------------------------------------------------------

    def submit(self, qname: str, rdtype: str, done: Callable[[Answer], None],
               labels: bytes | None = None, attempt: int = 0) -> bool:
        """Ask; ``done`` gets the answer. False when only dnspython can put it on the wire.

        ``labels``: the name's ``labels_wire``, when the asker has it at hand.
        ``attempt``: tries already spent on this question (a SERVFAIL asked again):
        it goes to the next server, and only the tries left are retransmitted.
        """
        return self.send(_Callback(done, qname, rdtype, attempt), labels)

    def send(self, pending: WireQuestion, labels: bytes | None = None) -> bool:
        """``submit`` for an asker whose own object carries the question's fields."""
        rdtype = pending.rdtype
        if labels is None or len(labels) > _MAX_LABELS_WIRE or rdtype != "A":
            question = question_wire(pending.qname, rdtype, labels)
            if question is None:
                return False
        else:  # question_wire, inline: the common case, a blocklist A question
            question = labels + _A_TAIL
        pending.question = question
        if self._sock is None:
            self._open()
        if self._waiting or len(self._pending) >= self.window:
            self._waiting.append(pending)
        else:
            self._start(pending)
        return True

    def _start(self, pending: WireQuestion) -> None:
        # ``_send_waiting`` repeats this and ``_send`` inline for its common case: keep
        # them in step.
        ident = random.getrandbits(16)
        while ident in self._pending:
            ident = random.getrandbits(16)
        if pending.rdtype in _PLAIN_TYPES:
            pending.packet = _HEADER.pack(ident, _FLAGS, 1, 0, 0, 0) + pending.question
        else:
            pending.packet = _HEADER.pack(ident, _FLAGS, 1, 0, 0, 1) + pending.question + _OPT
        self._pending[ident] = pending
        self._send(pending)

    def _send_waiting(self) -> None:
        waiting = self._waiting
        if not waiting:
            return
        sock, pending_by_id = self._sock, self._pending
        if not self._connected or sock is None:
            while waiting and len(pending_by_id) < self.window and self._sock is not None:
                self._start(waiting.popleft())
            return
        # _start and _send for a connected socket, inline: with runs in batches nearly
        # every question waits its turn and goes out here. Keep them in step.
        free = self.window - len(pending_by_id)
        if free <= 0:
            return
        getrandbits, pack = random.getrandbits, _HEADER.pack
        deadline = time.monotonic() + self.timeout
        while waiting and free > 0:
            pending = waiting.popleft()
            free -= 1
            ident = getrandbits(16)
            while ident in pending_by_id:
                ident = getrandbits(16)
            if pending.rdtype in _PLAIN_TYPES:
                pending.packet = packet = pack(ident, _FLAGS, 1, 0, 0, 0) + pending.question
            else:
                pending.packet = packet = pack(ident, _FLAGS, 1, 0, 0, 1) + pending.question \
                    + _OPT
            pending_by_id[ident] = pending
            _send_connected(sock, packet)
            pending.deadline = deadline
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _send(self, pending: WireQuestion) -> None:
        sock = self._sock
        if sock is not None:
            if self._connected:
                _send_connected(sock, pending.packet)
            else:
                # try/except, not contextlib.suppress: that is two Python calls per packet.
                try:  # noqa: SIM105
                    sock.sendto(pending.packet,
                                self._addresses[pending.attempt % len(self._addresses)])
                except OSError:
                    pass  # a full buffer (or a server still down) is a lost packet: retried
        pending.deadline = time.monotonic() + self.timeout
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        """Every tick while questions are open: retransmit or time out the overdue ones.

        Walking the questions on the wire is cheap because the window bounds
        them; a timer per question, or a queue of deadlines kept until each
        passed, cost more CPU and memory than the walk.
        """
        # ``_sweeper`` keeps pointing at this (fired) handle until the end, so the
        # retransmissions below do not schedule sweeps of their own.
        loop = self._loop
        if loop is None or self._sock is None:
            self._sweeper = None
            return
        try:
            now = time.monotonic()
            overdue = [(i, p) for i, p in self._pending.items() if p.deadline <= now]
            if overdue:
                # Answers may be waiting in the socket behind a busy loop: read them first.
                self._drain()
                for ident, pending in overdue:
                    if self._pending.get(ident) is pending and pending.deadline <= now:
                        self._expire(ident, pending)
            self._send_waiting()
        finally:
            self._sweeper = (loop.call_later(self._tick, self._sweep)
                             if self._pending or self._waiting else None)

    def _expire(self, ident: int, pending: WireQuestion) -> None:
        pending.attempt += 1
        if pending.attempt < self.attempts:
            self._send(pending)
            return
        del self._pending[ident]
        server = self.servers[(pending.attempt - 1) % len(self.servers)]
        _deliver(pending, Answer(
            pending.qname, pending.rdtype, Outcome.TIMEOUT,
            detail=f"timeout after {pending.attempt} attempt(s), last to {server}"))

    async def _tcp(self, pending: WireQuestion) -> None:
        server = self.servers[pending.attempt % len(self.servers)]
        query = dns.message.make_query(pending.qname, pending.rdtype)
        query.flags |= dns.flags.AD
        try:
            response = await dns.asyncquery.tcp(query, server, timeout=self.timeout,
                                                port=self.port)
            answer = answer_from_message(pending.qname, pending.rdtype, response)
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            answer = Answer(pending.qname, pending.rdtype, Outcome.TIMEOUT,
                            detail=f"truncated over UDP, TCP failed: {type(exc).__name__}")
        except Exception as exc:  # whatever went wrong, the askers get an answer (an error)
            answer = Answer(pending.qname, pending.rdtype, Outcome.SERVFAIL,
                            detail=f"truncated over UDP, TCP answer unreadable: {exc!r}")
        _deliver(pending, answer)
        self._send_waiting()

    def close(self) -> None:
        """Close the socket; every question still open is answered TIMEOUT (never "no record")."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        loop = self._loop
        if self._sock is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        unanswered = [*self._pending.values(), *self._waiting]
        self._pending.clear()
        self._waiting.clear()
        if loop is None or loop.is_closed():
            return  # nobody is left to tell
        for pending in unanswered:
            _deliver(pending, Answer(pending.qname, pending.rdtype, Outcome.TIMEOUT,
                                detail="resolver closed"))

    @property
    def in_flight(self) -> int:
        return len(self._pending)


def _send_connected(sock: socket.socket, packet: bytes) -> None:
    """Send on a connected socket; a lost packet is retried by the sweep, never raised."""
    # try/except, not contextlib.suppress: that is two Python calls per packet.
    try:
        try:
            sock.send(packet)
        except ConnectionRefusedError:
            # A connected socket reports an earlier ICMP "port unreachable" on the next
            # call, this one: the packet was not sent, so send it now.
            sock.send(packet)
    except OSError:
        pass  # a full buffer (or a server still down) is a lost packet: retried


def _deliver(pending: WireQuestion, answer: Answer) -> None:
    """Hand over an answer. A callback that raises is a bug, but it must not stop the
    drain, the sweep or ``close`` from answering every other question."""
    try:
        pending(answer)
    except Exception:
        log.exception("answer callback for %s %s failed", pending.rdtype, pending.qname)
