"""The CPU meter charges a process tree's time to its component, grandchildren included."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange_bench import cpu
from exchange_bench.cpu import CpuMeter, CpuSample, cpu_breakdown, joined

# A parent that starts a child which burns 0.5 s of CPU (by its own precise clock), reaps it, says so,
# and stays. /proc counts in clock ticks, so the tests ask for a little less than the burn.
_TREE = (
    "import subprocess, sys, time; "
    "subprocess.run([sys.executable, '-c', 'import time\\nt=time.process_time()\\n"
    "while time.process_time()-t<0.5: pass'], check=True); "
    "print('reaped', flush=True); time.sleep(5)"
)


def test_a_grandchild_s_cpu_is_charged_to_its_root_and_nothing_to_an_idle_one() -> None:
    busy = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    time.sleep(0.3)  # both interpreters have started
    meter = CpuMeter({"busy": busy.pid, "idle": idle.pid, "gone": None})
    before = meter.sample()
    assert busy.stdout is not None
    assert busy.stdout.readline().strip() == "reaped"  # the child's time is in its parent's cutime now
    after = meter.sample()
    busy.kill()
    busy.wait(timeout=30)
    busy.stdout.close()
    idle.wait(timeout=30)

    assert "gone" not in after.seconds
    assert after.seconds["busy"] >= 0.45  # the whole burn, though the burner has exited
    assert after.seconds["busy"] > before.seconds["busy"]
    assert after.seconds["idle"] - before.seconds["idle"] < 0.1


# A parent whose child burns 0.5 s of CPU and exits; the parent reaps it when told to.
_REAPER = (
    "import os, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    t = time.process_time()\n"
    "    while time.process_time() - t < 0.5: pass\n"
    "    os._exit(0)\n"
    "print(pid, flush=True)\n"
    "sys.stdin.readline()\n"
    "os.waitpid(pid, 0)\n"
    "print('reaped', flush=True)\n"
    "time.sleep(30)\n"
)


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_a_child_reaped_while_proc_is_read_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc is read one process at a time: a pass that read the parent before the reap and
    looked for the child after it finds its time in neither. The meter must notice the reap
    and read again (the benchmark's floor once showed PostgreSQL at 0 ms per record when its
    pool's backends exited as the window closed)."""
    root = subprocess.Popen([sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert root.stdin is not None and root.stdout is not None
    try:
        child = int(root.stdout.readline())
        deadline = time.monotonic() + 30
        while _state(child) != "Z":  # the burn is over; the child waits to be reaped
            assert time.monotonic() < deadline
            time.sleep(0.05)
        real = cpu._processes
        passes = 0

        def torn_pass() -> dict[int, tuple[int, float]]:
            """The first pass reads everything but the child, which is reaped before its turn."""
            nonlocal passes
            passes += 1
            seen = real()
            if passes == 1:
                del seen[child]
                assert root.stdin is not None and root.stdout is not None
                root.stdin.write("reap\n")
                root.stdin.flush()
                assert root.stdout.readline().strip() == "reaped"
            return seen

        monkeypatch.setattr(cpu, "_processes", torn_pass)
        sample = CpuMeter({"root": root.pid}).sample()
    finally:
        root.kill()
        root.wait(timeout=30)
        root.stdin.close()
        root.stdout.close()
    assert passes == 2
    assert sample.seconds["root"] >= 0.45  # the child's burn, now in its parent's reaped time


def test_breakdown_is_cpu_rate_over_record_rate() -> None:
    before = CpuSample(at=0.0, seconds={"server": 1.0, "postgres": 0.0}, busy_ticks=0, steal_ticks=0,
                       total_ticks=0)
    tick = 100  # SC_CLK_TCK on Linux
    after = CpuSample(at=2.0, seconds={"server": 2.0, "postgres": 0.5}, busy_ticks=3 * tick, steal_ticks=40,
                      total_ticks=4 * tick)
    report = cpu_breakdown(before, after, records_per_s=500)
    # server: 1 s over 2 s = 0.5 core at 500 records/s = 1 ms per record.
    assert report["ms_per_record"]["server"] == 1.0
    assert report["ms_per_record"]["postgres"] == 0.5
    assert report["ms_per_record"]["total"] == 3.0
    assert report["ms_per_record"]["other"] == 1.5
    assert report["cores_busy"] == 1.5
    assert report["steal_pct"] == 10.0


def test_windows_joined_add_their_cpu_and_their_wall_time() -> None:
    tick = 100
    first = (CpuSample(10.0, {"server": 5.0}, 0, 0, 0), CpuSample(11.0, {"server": 5.5}, tick, 0, 2 * tick))
    # The second window is of a later server process (its counter starts again) and adds a component.
    second = (CpuSample(50.0, {"server": 0.0, "s3": 1.0}, 1000, 10, 4000),
              CpuSample(53.0, {"server": 1.5, "s3": 2.0}, 1000 + 4 * tick, 10 + 60, 4000 + 6 * tick))
    before, after = joined([first, second])
    report = cpu_breakdown(before, after, records_per_s=500)  # 4 s of wall, 2,000 records
    assert after.at - before.at == 4.0
    assert report["ms_per_record"]["server"] == 1.0  # (0.5 + 1.5) s over 2,000 records
    assert report["ms_per_record"]["s3"] == 0.5  # 1 s, charged though the first window had no s3
    assert report["ms_per_record"]["total"] == 2.5  # 5 s of busy ticks
    assert report["cores_busy"] == 1.25
    assert report["steal_pct"] == 7.5  # 60 of 800 ticks


def test_uptime_of_a_process_counts_from_its_start() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.5)
        up = cpu.uptime_s(child.pid)
        assert up is not None and 0.3 <= up < 5  # clock ticks: 10 ms steps
    finally:
        child.kill()
        child.wait(timeout=30)
    assert cpu.uptime_s(child.pid) is None  # reaped: gone
