"""A benchmark process's own peak memory (stdlib only: the processes measured import it)."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM``, which starts afresh at exec.

    ``ru_maxrss`` would carry over the peak of the process that forked this one
    (Linux keeps it across exec), so a small tool started by the harness would
    report the harness's memory. Without ``/proc``, ``ru_maxrss`` is all there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
