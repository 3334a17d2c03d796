"""The ceiling: ``dnsperf`` (Debian package dnsperf), same questions, same unbound."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.stack import which

_FIELDS = {
    "queries_sent": r"Queries sent:\s+(\d+)",
    "queries_completed": r"Queries completed:\s+(\d+)",
    "queries_lost": r"Queries lost:\s+(\d+)",
    "queries_per_second": r"Queries per second:\s+([\d.]+)",
    "wall_seconds": r"Run time \(s\):\s+([\d.]+)",
    "average_latency_seconds": r"Average Latency \(s\):\s+([\d.]+)",
}


def write_query_file(path: Path, names: list[str], rdtype: str = "A") -> None:
    path.write_text("".join(f"{n} {rdtype}\n" for n in names))


def parse_output(text: str) -> dict[str, Any]:
    """The numbers of dnsperf's summary; raises ValueError when it printed none."""
    out: dict[str, Any] = {}
    for key, pattern in _FIELDS.items():
        m = re.search(pattern, text)
        if m:
            out[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    if "queries_per_second" not in out:
        raise ValueError(f"dnsperf printed no summary:\n{text[-2000:]}")
    return out


def run_dnsperf(
    query_file: Path, port: int, concurrency: int, timeout: float = 5.0
) -> dict[str, Any]:
    """One pass over the file with ``-q concurrency`` outstanding questions, one socket."""
    binary = which("dnsperf")
    if binary is None:
        raise FileNotFoundError("dnsperf not found (Debian package dnsperf)")
    argv = [
        binary, "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file),
        "-q", str(concurrency), "-n", "1", "-t", str(timeout),
        "-c", "1", "-T", "1",  # one client socket, like the exporter
        "-b", "8192",  # the same 8 MB receive buffer the exporter's socket asks for
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({res.returncode}): {res.stdout}{res.stderr}")
    result = parse_output(res.stdout)
    result["argv"] = argv
    return result
