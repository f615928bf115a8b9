"""What the machine and its processes have used, read from /proc (Linux): CPU-seconds and memory."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time used so far: by the process `pid` (user + system), or by the whole machine (all but idle)."""
    ticks = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / ticks  # less idle and iowait


def memory_mib(pid: int | str = "self") -> tuple[float, float]:
    """RSS and peak RSS (VmRSS, VmHWM, which /proc gives in kB) of a process, in MiB (by default this one)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss, peak = (int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    return rss, peak
