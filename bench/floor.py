"""The Python floor: the least a pure-Python client does to ask the same questions.

``python -m bench.floor QUERIES.txt --port P --concurrency C`` asks every
``name A`` line of a dnsperf query file through one connected UDP socket, with
at most C questions in flight, prebuilt wire questions, answers matched on ID
and question, and retransmission after 2 s (up to 3 tries). No cache, no
checks, no store, no scheduler: everything the exporter does beyond this is
its own cost. It prints one JSON object.

It answers a question the ratio against dnsperf cannot: when the exporter
misses a target, is the target out of reach of any Python client on this
machine at that moment, or is it the exporter's own work?
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.cycle_worker import cpu_seconds
from exporter.dns_wire import enlarge_receive_buffer, question_wire

_HEADER = struct.Struct("!HHHHHH")
_TIMEOUT, _ATTEMPTS, _TICK = 2.0, 3, 0.25


def wire_question(name: str) -> bytes:
    """QNAME, QTYPE A, QCLASS IN, as the exporter builds them (before any timing)."""
    question = question_wire(name, "A")
    if question is None:
        raise ValueError(f"not a name this floor can ask: {name!r}")
    return question


async def ask_all(questions: list[bytes], port: int, concurrency: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    enlarge_receive_buffer(sock)  # the exporter's buffer, asked for the same way
    sock.connect(("127.0.0.1", port))
    waiting = deque(range(len(questions)))
    #: ID -> [question index, deadline, tries]
    in_flight: dict[int, list[Any]] = {}
    done = loop.create_future()
    counts = {"answered": 0, "sent": 0, "retransmitted": 0, "lost": 0}

    def send(index: int, tries: int, ident: int | None = None) -> None:
        """A new question (a new ID), or a retransmission (its ID, as the exporter's):
        a late answer to the first try then still counts."""
        if ident is None:
            ident = random.getrandbits(16)
            while ident in in_flight:
                ident = random.getrandbits(16)
        in_flight[ident] = [index, time.monotonic() + _TIMEOUT, tries]
        counts["sent"] += 1
        # The exporter's flags (RD, AD). Not contextlib.suppress: two more Python calls
        # per packet, and this is the floor.
        try:  # noqa: SIM105
            sock.send(_HEADER.pack(ident, 0x0120, 1, 0, 0, 0) + questions[index])
        except OSError:
            pass  # lost: retransmitted by the sweep

    def top_up() -> None:
        while waiting and len(in_flight) < concurrency:
            send(waiting.popleft(), 1)
        if not waiting and not in_flight and not done.done():
            done.set_result(None)

    def drain() -> None:
        for _ in range(4096):
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            if len(data) < 12:
                continue
            ident = (data[0] << 8) | data[1]
            entry = in_flight.get(ident)
            if entry is None:
                continue
            question = questions[entry[0]]
            if data[12:12 + len(question)].lower() != question.lower():
                continue  # a late answer to an earlier question with this ID
            del in_flight[ident]
            counts["answered"] += 1
        top_up()

    def sweep() -> None:
        now = time.monotonic()
        for ident, (index, deadline, tries) in list(in_flight.items()):
            if deadline <= now:
                if tries < _ATTEMPTS:
                    counts["retransmitted"] += 1
                    send(index, tries + 1, ident)
                else:
                    del in_flight[ident]
                    counts["lost"] += 1
        top_up()
        if not done.done():
            loop.call_later(_TICK, sweep)

    loop.add_reader(sock.fileno(), drain)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    loop.call_later(_TICK, sweep)
    top_up()
    await done
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    loop.remove_reader(sock.fileno())
    sock.close()
    # Questions lost after every try make it no throughput, as a failed run does the
    # exporter's: the report's pairing reads failed_runs.
    return {"queries_per_second": counts["answered"] / wall if wall else 0.0,
            "wall_seconds": wall, "cpu_seconds": cpu, "failed_runs": counts["lost"], **counts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("queries", type=Path, help="a dnsperf query file (name A per line)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=256)
    args = p.parse_args(argv)
    names = [line.split()[0] for line in args.queries.read_text().splitlines() if line.strip()]
    result = asyncio.run(ask_all([wire_question(n) for n in names], args.port,
                                 args.concurrency))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
