"""Apache Kafka 4.x, single node in KRaft mode, from Maven Central jars on the machine's Java.

The jars are resolved once with Maven from ``kafka-pom.xml`` (package data beside this module)
into a cache folder that several stacks (the developer's and the test session's) share.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import signal
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from exchange.adapters.kafka import broker_ready
from exchange_stack._base import ServiceName, ServiceState, StackError
from exchange_stack._process import (
    pid_alive,
    port_open,
    read_pid,
    spawn_detached,
    stop_pid,
    wait_until,
)

__all__ = ("KafkaService", "kafka_pom")

_INSTALL_HINT = (
    "install Java 17+ and Maven (Debian: apt-get install openjdk-17-jre-headless maven), "
    "or use `docker compose up` instead of the native stack"
)


def kafka_pom() -> bytes:
    """The Maven project that names the broker's jars (its hash names the cache folder)."""
    return resources.files("exchange_stack").joinpath("kafka-pom.xml").read_bytes()


def _java_major(java: str) -> int:
    out = subprocess.run(  # noqa: S603 - the machine's java, fixed arguments
        [java, "-version"], capture_output=True, text=True, check=False, timeout=30
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


class KafkaService:
    name: ServiceName = "kafka"

    def __init__(self, root: Path, port: int, controller_port: int, cache_dir: Path) -> None:
        self._dir = root / "kafka"
        self._data = self._dir / "data"
        self._log = self._dir / "kafka.log"
        self._pid_file = self._dir / "kafka.pid"
        self._props = self._dir / "server.properties"
        self._cache_dir = cache_dir
        self.port = port
        self.controller_port = controller_port

    @property
    def log_file(self) -> Path:
        return self._log

    @property
    def brokers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs_dir(self) -> Path:
        digest = hashlib.sha256(kafka_pom()).hexdigest()[:12]
        return self._cache_dir / f"kafka-libs-{digest}"

    def check_prerequisites(self) -> None:
        java = shutil.which("java")
        if java is None:
            raise StackError(f"kafka: Java not found on PATH; {_INSTALL_HINT}")
        if _java_major(java) < 17:
            raise StackError(f"kafka: Java 17+ is required (found an older one); {_INSTALL_HINT}")
        if not self.libs_dir.is_dir() and shutil.which("mvn") is None:
            raise StackError(f"kafka: Maven (mvn) not found on PATH to fetch the Kafka jars; {_INSTALL_HINT}")

    def _ensure_libs(self) -> Path:
        libs = self.libs_dir
        if libs.is_dir():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(f"kafka: Maven (mvn) not found on PATH; {_INSTALL_HINT}")
        staging = libs.with_name(libs.name + f".tmp-{uuid.uuid4().hex[:8]}")
        # Maven runs on a copy in the cache, so nothing it writes lands beside the package.
        pom = staging.with_name(staging.name + ".pom.xml")
        pom.parent.mkdir(parents=True, exist_ok=True)
        pom.write_bytes(kafka_pom())
        result = subprocess.run(  # noqa: S603 - the machine's mvn, fixed arguments
            [
                mvn, "-q", "-B", "-f", str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        pom.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = (result.stdout + result.stderr).strip()[-600:]
            raise StackError(f"kafka: resolving the Kafka jars with Maven failed: {tail}")
        try:
            staging.rename(libs)
        except OSError:
            # Another stack resolved them concurrently; theirs are as good as ours.
            shutil.rmtree(staging, ignore_errors=True)
        return libs

    def _write_properties(self) -> None:
        self._props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self._data}",
                    "num.partitions=6",
                    "auto.create.topics.enable=false",
                    # One node: every internal topic has replication factor 1.
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=6",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )

    def _format_once(self, libs: Path) -> None:
        if (self._data / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # A base64url id may start with "-", which the storage tool would read as an option.
        cluster_id = "k" + cluster_id[1:] if cluster_id.startswith("-") else cluster_id
        result = subprocess.run(  # noqa: S603
            ["java", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",  # noqa: S607
             "-t", cluster_id, "-c", str(self._props)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(f"kafka: formatting storage failed: {result.stderr.strip()[-400:]}")

    def running(self) -> bool:
        return pid_alive(read_pid(self._pid_file))

    def start(self) -> None:
        if self.running():
            return
        self.check_prerequisites()
        self._dir.mkdir(parents=True, exist_ok=True)
        libs = self._ensure_libs()
        self._write_properties()
        self._format_once(libs)
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise StackError(f"kafka: port {port} is already in use by another process")
        spawn_detached(
            [
                "java",
                "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-Dorg.slf4j.simpleLogger.log.kafka.server.BrokerLifecycleManager=warn",
                "-cp", f"{libs}/*",
                "kafka.Kafka", str(self._props),
            ],
            log_file=self._log,
            pid_file=self._pid_file,
            cwd=self._dir,
        )

    def wait_healthy(self, timeout: float) -> None:
        def ready() -> bool:
            if not self.running():
                raise StackError(f"kafka exited during start; see log {self._log}")
            return port_open(self.port) and broker_ready(self.brokers, timeout=2.0)

        if not wait_until(ready, timeout=timeout, interval=0.5):
            raise StackError(f"kafka did not become healthy within {timeout:.0f}s; see log {self._log}")

    def stop(self) -> None:
        pid = read_pid(self._pid_file)
        if pid is None or not pid_alive(pid):
            return
        # SIGTERM is Kafka's controlled shutdown; it flushes logs so data survives.
        if not stop_pid(pid, [(signal.SIGTERM, 30), (signal.SIGKILL, 10)]):
            raise StackError(f"kafka: did not stop; see log {self._log}")
        wait_until(lambda: not port_open(self.port), timeout=10)

    def status(self) -> ServiceState:
        pid = read_pid(self._pid_file)
        alive = pid_alive(pid)
        return ServiceState(
            name="kafka",
            state="running" if alive else "stopped",
            address=self.brokers,
            pid=pid if alive else None,
            log=self._log,
            data=self._data,
        )
