"""How much memory this process may really use, and byte sizes as users write them ("4G").

A fit must size its sample before it allocates it: the limit that bites first is the smallest
of the address-space limit (``RLIMIT_AS``, what ``ulimit -v`` / ``prlimit --as`` set; it counts
virtual memory, so what the process already maps is subtracted), the cgroup memory limit
(containers, Kubernetes) and the memory the kernel says is available now.
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass
from pathlib import Path

from .errors import SmecError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
_NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a number near 2**63


def parse_bytes(text: str) -> int:
    """'4G' -> 4 GiB; '512M', '1.5T' and plain byte counts too."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise SmecError(f"memory budget {text!r}: expected a size such as 512M, 4G or 1.5T")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_bytes(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.1f} {unit}iB"
    return f"{n} B"


@dataclass(frozen=True)
class MemoryLimit:
    """Bytes this process may still allocate, and which limit that is (for the user's message)."""

    bytes: int
    source: str


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text != "max" and text.isdigit() and int(text) < _NO_LIMIT:
            return int(text)
    return None


def available_memory() -> MemoryLimit:
    """The smallest of: address space left under RLIMIT_AS, cgroup limit left, MemAvailable."""
    candidates = []
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        candidates.append(MemoryLimit(max(0, soft - (_status_kib("VmSize") or 0)), "address-space limit (RLIMIT_AS)"))
    cgroup = _cgroup_limit()
    if cgroup is not None:
        candidates.append(MemoryLimit(max(0, cgroup - (_status_kib("VmRSS") or 0)), "cgroup memory limit"))
    free = _meminfo_available()
    if free is not None:
        candidates.append(MemoryLimit(free, "available RAM (MemAvailable)"))
    if not candidates:
        raise SmecError("cannot tell how much memory is available here; pass --max-memory")
    return min(candidates, key=lambda m: m.bytes)
