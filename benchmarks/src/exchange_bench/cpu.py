"""Where the time goes: CPU seconds per component during a measured window, from /proc.

On two cores shared by the server, PostgreSQL, SeaweedFS, Kafka and the load generator,
throughput is CPU per record: this module tells whose. Each component is a process tree
(a root pid and its descendants: the PostgreSQL postmaster and its backends, say). A
process's own user+system time and that of its reaped children are both counted, so a
backend that exits during the window is neither lost nor counted twice, provided the
sample is consistent: reading /proc is not atomic, and a backend reaped by its postmaster
between the two reads would be missed (its time is in neither), so a sample is retaken
when a root reaped a child while it was read. ``steal_pct`` is
the share of the machine's time the hypervisor gave to someone else: when it is high, the
run's throughput numbers are low for reasons outside this machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("CpuMeter", "CpuSample", "cpu_breakdown", "joined", "uptime_s")

_TICK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")
_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float
    seconds: dict[str, float]
    """CPU seconds so far, by component."""
    busy_ticks: int
    steal_ticks: int
    total_ticks: int


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat from the state on (None: the process is gone)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return stat[stat.rindex(")") + 2:].split()


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and its reaped children)."""
    out: dict[int, tuple[int, float]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is None:
            continue  # exited (and was reaped) while we looked
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        out[int(entry.name)] = (int(fields[1]), (utime + stime + cutime + cstime) / _TICK)
    return out


def _reaped_ticks(pids: Iterable[int]) -> dict[int, int]:
    """pid -> CPU ticks of its children reaped so far: it grows exactly when a child is reaped."""
    out: dict[int, int] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        out[pid] = -1 if fields is None else int(fields[13]) + int(fields[14])
    return out


def uptime_s(pid: int) -> float | None:
    """Seconds since the process began (None: it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    boot_s = float((_PROC / "uptime").read_text().split()[0])
    return boot_s - int(fields[19]) / _TICK  # field 22 of stat: its start, in ticks after boot


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) ticks of all CPUs since boot."""
    values = [int(v) for v in (_PROC / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq, steal, sum(values[:8])


class CpuMeter:
    def __init__(self, components: Mapping[str, int | None]) -> None:
        """``components``: name -> root pid of its process tree (None: not running)."""
        self._roots = {pid: name for name, pid in components.items() if pid}

    def sample(self) -> CpuSample:
        processes = self._consistent_processes()
        seconds = dict.fromkeys(self._roots.values(), 0.0)
        for pid, (_parent, cpu) in processes.items():
            owner = self._owner(pid, processes)
            if owner is not None:
                seconds[owner] += cpu
        busy, steal, total = _machine_ticks()
        return CpuSample(time.monotonic(), seconds, busy, steal, total)

    def _consistent_processes(self) -> dict[int, tuple[int, float]]:
        """One pass over /proc during which no root reaped a child. A child reaped after the
        pass read its parent and before it read the child is in neither: a backend that
        exits with seconds of CPU (a pool closed as the window ends) would make a
        component's CPU go backwards. The roots here reap their own children (the
        postmaster its backends); a few retries cover a burst of exits."""
        for _ in range(_ATTEMPTS - 1):
            reaped = _reaped_ticks(self._roots)
            processes = _processes()
            if _reaped_ticks(self._roots) == reaped:
                return processes
        return _processes()

    def _owner(self, pid: int, processes: Mapping[int, tuple[int, float]]) -> str | None:
        while pid > 1:
            name = self._roots.get(pid)
            if name is not None:
                return name
            parent = processes.get(pid)
            if parent is None:
                return None
            pid = parent[0]
        return None


def joined(windows: Sequence[tuple[CpuSample, CpuSample]]) -> tuple[CpuSample, CpuSample]:
    """Several measured windows as one (their CPU, ticks and wall time added up): the
    benchmark's alternating rounds of one phase give one breakdown."""
    components = {name for _, after in windows for name in after.seconds}
    seconds = {name: sum(a.seconds.get(name, 0.0) - b.seconds.get(name, 0.0) for b, a in windows)
               for name in components}
    start = CpuSample(0.0, dict.fromkeys(components, 0.0), 0, 0, 0)
    end = CpuSample(
        at=sum(a.at - b.at for b, a in windows),
        seconds=seconds,
        busy_ticks=sum(a.busy_ticks - b.busy_ticks for b, a in windows),
        steal_ticks=sum(a.steal_ticks - b.steal_ticks for b, a in windows),
        total_ticks=sum(a.total_ticks - b.total_ticks for b, a in windows),
    )
    return start, end


def cpu_breakdown(before: CpuSample, after: CpuSample, records_per_s: float) -> dict[str, Any]:
    """CPU ms per record by component (and ``other``: the rest of the machine's busy time,
    the kernel's threads and this runner among it), the cores used, and the steal."""
    wall = max(after.at - before.at, 1e-6)
    per_record: dict[str, float] = {}
    named = 0.0
    for name, total in after.seconds.items():
        spent = max(0.0, total - before.seconds.get(name, 0.0))
        named += spent
        per_record[name] = _ms_per_record(spent, wall, records_per_s)
    busy_s = (after.busy_ticks - before.busy_ticks) / _TICK
    per_record["other"] = _ms_per_record(max(0.0, busy_s - named), wall, records_per_s)
    per_record["total"] = _ms_per_record(busy_s, wall, records_per_s)
    ticks = max(1, after.total_ticks - before.total_ticks)
    return {
        "ms_per_record": {k: round(v, 3) for k, v in per_record.items()},
        "cores_busy": round(busy_s / wall, 2),
        "steal_pct": round(100 * (after.steal_ticks - before.steal_ticks) / ticks, 1),
    }


def _ms_per_record(cpu_s: float, wall_s: float, records_per_s: float) -> float:
    if records_per_s <= 0:
        return 0.0
    return 1000 * (cpu_s / wall_s) / records_per_s
