"""The local stack: PostgreSQL, Kafka and S3 as native processes under one folder.

Ports are chosen on the first ``up`` and kept in ``stack.json`` so ``stop``/``start`` of a
service brings it back on the same address with the same data. ``up`` also creates the
database, the topics and the bucket, and writes ``stack.env`` for shells and tools.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from exchange.adapters.kafka import ensure_topics
from exchange.events.topics import PLATFORM_TOPICS
from exchange_stack._base import ServiceName, ServiceState, StackError, StackService
from exchange_stack._process import free_port, port_open
from exchange_stack.kafka import KafkaService
from exchange_stack.postgres import PostgresService
from exchange_stack.s3 import S3Ports, S3Service

__all__ = ("SERVICES", "Stack", "StackPorts")

SERVICES: tuple[ServiceName, ...] = ("postgres", "kafka", "s3")
BUCKET = "raw-objects"
ACCESS_KEY = "exchange"
SECRET_KEY = "exchange"  # noqa: S105 - SeaweedFS without identities accepts any key; local only
PARTITIONS = 6
_TIMEOUTS: dict[ServiceName, float] = {"postgres": 60, "kafka": 120, "s3": 90}


@dataclass(frozen=True, slots=True)
class StackPorts:
    postgres: int
    kafka: int
    kafka_controller: int
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    @classmethod
    def defaults(cls) -> StackPorts:
        """Fixed ports for the developer's stack, so addresses stay the same across machines."""
        return cls(
            postgres=55432, kafka=59092, kafka_controller=59093, s3=58333, s3_grpc=58334,
            master=59333, master_grpc=59334, volume=58080, volume_grpc=58081,
            filer=58888, filer_grpc=58889,
        )

    @classmethod
    def free(cls) -> StackPorts:
        """Ports free right now, for a throwaway stack (tests) next to the developer's."""
        chosen: set[int] = set()
        values: list[int] = []
        for _ in range(11):
            port = free_port()
            while port in chosen:
                port = free_port()
            chosen.add(port)
            values.append(port)
        return cls(*values)

    def all(self) -> tuple[int, ...]:
        return tuple(asdict(self).values())


class Stack:
    """Manage the local stack rooted at ``root`` (normally ``./.exchange``)."""

    def __init__(self, root: Path, *, cache_dir: Path | None = None, ports: StackPorts | None = None) -> None:
        self.root = root.resolve()
        self.cache_dir = (cache_dir or self.root / "cache").resolve()
        self._config = self.root / "stack.json"
        self.partitions = PARTITIONS
        self.ports = self._load_or_choose_ports(ports)
        self.secrets = self._load_or_make_secrets()
        self.postgres = PostgresService(self.root, self.ports.postgres)
        self.kafka = KafkaService(self.root, self.ports.kafka, self.ports.kafka_controller, self.cache_dir)
        self.s3 = S3Service(
            self.root,
            S3Ports(
                s3=self.ports.s3, s3_grpc=self.ports.s3_grpc,
                master=self.ports.master, master_grpc=self.ports.master_grpc,
                volume=self.ports.volume, volume_grpc=self.ports.volume_grpc,
                filer=self.ports.filer, filer_grpc=self.ports.filer_grpc,
            ),
        )

    def _load_or_choose_ports(self, requested: StackPorts | None) -> StackPorts:
        if self._config.is_file():
            saved = json.loads(self._config.read_text())
            return StackPorts(**saved["ports"])
        if requested is not None:
            return requested
        defaults = StackPorts.defaults()
        # A busy default port (another program) must not block a first `up`.
        return defaults if not any(port_open(p) for p in defaults.all()) else StackPorts.free()

    def _load_or_make_secrets(self) -> dict[str, str]:
        """This stack's own JWT and token keys: the code has no development credential to fall back on."""
        saved = json.loads(self._config.read_text()).get("secrets", {}) if self._config.is_file() else {}
        names = ("JWT_SECRET", "TOKENIZER_HMAC_KEY", "LINKAGE_HMAC_KEY")
        return {name: saved.get(name) or secrets.token_urlsafe(32) for name in names}

    def _save_ports(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._config.write_text(json.dumps({"ports": asdict(self.ports), "secrets": self.secrets}, indent=2) + "\n")
        self._config.chmod(0o600)

    def service(self, name: str) -> StackService:
        services: dict[str, StackService] = {"postgres": self.postgres, "kafka": self.kafka, "s3": self.s3}
        if name not in services:
            raise StackError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
        return services[name]

    def _services(self) -> Iterator[StackService]:
        yield from (self.postgres, self.kafka, self.s3)

    # -- lifecycle --------------------------------------------------------------
    def up(self, *, partitions: int = PARTITIONS) -> dict[str, str]:
        """Start everything, wait for health, create database/topics/bucket, write stack.env.

        ``partitions`` is KAFKA_PARTITIONS: enough that several normalizers in one consumer
        group share the load. Existing topics keep theirs.
        """
        self.partitions = partitions
        for svc in self._services():
            svc.check_prerequisites()
        self._save_ports()
        # Start all three first, then wait: their start-ups overlap.
        for svc in self._services():
            svc.start()
        for svc in self._services():
            svc.wait_healthy(_TIMEOUTS[svc.name])
        self._provision(partitions)
        env = self.env()
        self.env_file.write_text(
            "# Written by `exchange stack up`: `set -a; . .exchange/stack.env` points a shell at the stack.\n"
            + "".join(f"{k}={v}\n" for k, v in env.items())
        )
        self.env_file.chmod(0o600)  # it holds this stack's keys
        return env

    def _provision(self, partitions: int) -> None:
        try:
            ensure_topics(self.kafka.brokers, PLATFORM_TOPICS, partitions=partitions)
        except Exception as exc:
            raise StackError(
                f"kafka: creating topics failed ({type(exc).__name__}); see log {self.kafka.log_file}"
            ) from exc
        self._wait_bucket_writable()

    def _wait_bucket_writable(self) -> None:
        # Imported here: aiobotocore loads only for `stack up`, not for every command.
        from exchange.adapters.objectstore import ensure_bucket_sync  # noqa: PLC0415

        deadline = time.monotonic() + _TIMEOUTS["s3"]
        while True:
            try:
                ensure_bucket_sync(self.s3.endpoint, BUCKET, ACCESS_KEY, SECRET_KEY)
            except Exception as exc:
                # The S3 gateway answers before the filer behind it is ready; retry until then.
                if time.monotonic() > deadline:
                    raise StackError(
                        f"s3: bucket {BUCKET} does not take writes ({type(exc).__name__}); see log {self.s3.log_file}"
                    ) from exc
                time.sleep(0.5)
            else:
                return

    def down(self) -> None:
        """Stop every service; data stays under the root folder."""
        errors: list[str] = []
        for svc in reversed(list(self._services())):
            try:
                svc.stop()
            except StackError as exc:
                errors.append(str(exc))
        if errors:
            raise StackError("; ".join(errors))

    def stop(self, name: str) -> None:
        self.service(name).stop()

    def start(self, name: str) -> None:
        svc = self.service(name)
        svc.check_prerequisites()
        svc.start()
        svc.wait_healthy(_TIMEOUTS[svc.name])
        if svc is self.s3:
            self._wait_bucket_writable()  # "started" means usable, for tests and operators alike

    def status(self) -> list[ServiceState]:
        return [svc.status() for svc in self._services()]

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"

    def env(self) -> dict[str, str]:
        """The environment that points the application at this stack."""
        return {
            "ENV": "local",
            "DATABASE_URL": self.postgres.url,
            "KAFKA_BROKERS": self.kafka.brokers,
            "KAFKA_PARTITIONS": str(self.partitions),
            "S3_ENDPOINT": self.s3.endpoint,
            "S3_BUCKET": BUCKET,
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            **self.secrets,
        }
