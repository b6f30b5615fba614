"""The one typed settings object, read from the environment once and passed down.

Names follow the original system (see SPEC "Configuration"). Nothing else in the
code base reads ``os.environ``; the CLI calls :func:`load_settings` and hands the
result to the composition root.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from exchange.events.topics import DLQ_V1, DLQ_V2, TOPIC_V1, TOPIC_V2

__all__ = (
    "ENV_VARS",
    "AuthSettings",
    "DatabaseSettings",
    "HttpSettings",
    "IngestSettings",
    "KafkaSettings",
    "ObjectStoreSettings",
    "ObservabilitySettings",
    "PipelineSettings",
    "Secret",
    "Settings",
    "SettingsError",
    "TokenizerSettings",
    "load_settings",
    "read_env_file",
    "stack_partitions",
)

Environment = Literal["local", "test", "production"]
ObjectStoreClient = Literal["aiobotocore", "obstore"]
DEFAULT_SCHEMA_HINTS: tuple[str, ...] = ("partnerA.v1", "partnerA.v2", "partnerB.v1")


class SettingsError(ValueError):
    """A setting is missing or invalid. ``str()`` is one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"invalid setting {variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that never shows up in repr, str, logs or tracebacks."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "0.0.0.0"  # noqa: S104 - containers must listen on all interfaces; override with HTTP_HOST
    """HTTP_HOST: interface the HTTP server binds."""
    port: int = 8080
    """HTTP_PORT: TCP port of the HTTP server."""
    max_body_bytes: int = 1024 * 1024
    """Request bodies above this are refused with 413 (SPEC: 1 MiB)."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: Secret
    """DATABASE_URL: postgresql://user:password@host:port/db (the password is a secret)."""
    pool_min: int = 2
    """DB_POOL_MIN: connections opened at start."""
    pool_max: int = 40
    """DB_POOL_MAX: upper bound of the asyncpg pool.

    Sized for the default concurrency (32 normalizer slots, 32 load-generator connections):
    an ingest request holds its connection across the S3 PUT, a normalizer slot across its
    writes. At 16 the pool was the bottleneck (measured: normalizer 824 -> 1,179 records/s,
    ingest 554 -> ~700 req/s at 40).
    """

    @property
    def dsn(self) -> str:
        return self.url.reveal()


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    brokers: str
    """KAFKA_BROKERS: bootstrap servers, host:port[,host:port]."""
    topics: tuple[str, ...]
    """KAFKA_TOPICS (or single KAFKA_TOPIC): topics the normalizer consumes."""
    topic_v1: str = TOPIC_V1
    """TOPIC_RECORD_INGESTED_V1: topic of v1 events."""
    topic_v2: str = TOPIC_V2
    """TOPIC_RECORD_INGESTED_V2: topic of v2 events."""
    dlq_v1: str = DLQ_V1
    """KAFKA_DLQ_TOPIC_V1 (fallback KAFKA_DLQ_TOPIC): DLQ of v1 events."""
    dlq_v2: str = DLQ_V2
    """KAFKA_DLQ_TOPIC_V2 (fallback KAFKA_DLQ_TOPIC): DLQ of v2 events."""
    consumer_group: str = "normalizer"
    """KAFKA_CONSUMER_GROUP: consumer group of the normalizer role."""
    group_instance_id: str | None = None
    """KAFKA_GROUP_INSTANCE_ID: the normalizer's static group membership (KIP-345): unique per
    normalizer process and the same across its restarts (a pod name), so a restarted process takes
    its partitions back without a rebalance. Unset: dynamic membership."""
    partitions: int = 6
    """KAFKA_PARTITIONS: partitions per topic when the stack creates topics."""

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic the platform uses, in a stable order (the stack creates these)."""
        return (self.topic_v1, self.topic_v2, self.dlq_v1, self.dlq_v2)


@dataclass(frozen=True, slots=True)
class ObjectStoreSettings:
    endpoint: str
    """S3_ENDPOINT: http(s) URL of the S3 API."""
    bucket: str = "raw-objects"
    """S3_BUCKET: bucket of raw objects."""
    region: str = "us-east-1"
    """S3_REGION: region name sent to the S3 API."""
    access_key_id: Secret = Secret("")
    """AWS_ACCESS_KEY_ID."""
    secret_access_key: Secret = Secret("")
    """AWS_SECRET_ACCESS_KEY."""
    client: ObjectStoreClient = "obstore"
    """OBJECT_STORE_CLIENT: which adapter talks to S3 (obstore measured ~2x aiobotocore here)."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: Secret
    """JWT_SECRET: HS256 key; required outside ENV=local."""
    issuer: str = "exchange"
    """JWT_ISSUER: exact `iss` every token must carry."""
    audience: str = "exchange-api"
    """JWT_AUDIENCE: exact `aud` every token must carry."""
    leeway_seconds: int = 30
    """JWT_LEEWAY_SECONDS: clock skew tolerated on exp/nbf/iat."""


@dataclass(frozen=True, slots=True)
class TokenizerSettings:
    hmac_key: Secret
    """TOKENIZER_HMAC_KEY: HMAC-SHA256 key (>= 32 bytes outside ENV=local)."""
    key_id: str = "k1"
    """TOKENIZER_KEY_ID: recorded with every canonical row so keys can rotate."""
    url: str | None = None
    """TOKENIZER_URL: remote tokenizer; used when the tokenizer role is not in this process."""


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    max_attempts: int = 5
    """MAX_ATTEMPTS: normalizer attempts per event before the DLQ."""
    backoff_base_ms: int = 200
    """BACKOFF_BASE_MS: first retry delay; doubles per attempt, with jitter."""
    outbox_batch_size: int = 500
    """OUTBOX_BATCH_SIZE: rows one publisher claim takes."""
    outbox_retention_hours: int = 24
    """OUTBOX_RETENTION_HOURS: published outbox rows are deleted after this."""
    normalizer_concurrency: int = 128
    """NORMALIZER_CONCURRENCY: records processed at once by one normalizer."""
    normalizer_yield_at: int = 16
    """NORMALIZER_YIELD_AT: HTTP requests in flight in the same process from which the
    normalizer goes in waves (requests first, runtime/load.py); 0 never narrows."""


@dataclass(frozen=True, slots=True)
class IngestSettings:
    schema_hints: tuple[str, ...] = DEFAULT_SCHEMA_HINTS
    """SCHEMA_HINTS: the v2 `schema_hint` values accepted."""
    idempotency_retention_hours: int = 7 * 24
    """IDEMPOTENCY_RETENTION_HOURS: stored responses expire after this (default 7 days)."""
    batch_max: int = 64
    """INGEST_BATCH_MAX: requests at most in one ingest transaction (group commit, ADR 0003)."""
    batches_in_flight: int = 2
    """INGEST_BATCHES_IN_FLIGHT: ingest transactions open at once; requests arriving meanwhile
    wait to form the next batch. 1 would serialize the PUT phases of consecutive batches."""


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    log_level: str = "INFO"
    """LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""
    otlp_endpoint: str | None = None
    """OTEL_EXPORTER_OTLP_ENDPOINT: traces are exported there when set."""


@dataclass(frozen=True, slots=True)
class Settings:
    env: Environment
    """ENV: local, test or production. Only local accepts `Bearer dev`."""
    http: HttpSettings
    database: DatabaseSettings
    kafka: KafkaSettings
    object_store: ObjectStoreSettings
    auth: AuthSettings
    tokenizer: TokenizerSettings
    pipeline: PipelineSettings
    ingest: IngestSettings
    observability: ObservabilitySettings


# Every variable the application reads; compose.yaml and the README list exactly these.
ENV_VARS: tuple[str, ...] = (
    "ENV",
    "HTTP_HOST",
    "HTTP_PORT",
    "DATABASE_URL",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "KAFKA_BROKERS",
    "KAFKA_TOPICS",
    "KAFKA_TOPIC",
    "TOPIC_RECORD_INGESTED_V1",
    "TOPIC_RECORD_INGESTED_V2",
    "KAFKA_DLQ_TOPIC_V1",
    "KAFKA_DLQ_TOPIC_V2",
    "KAFKA_DLQ_TOPIC",
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_PARTITIONS",
    "S3_ENDPOINT",
    "S3_BUCKET",
    "S3_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "OBJECT_STORE_CLIENT",
    "JWT_SECRET",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECONDS",
    "TOKENIZER_URL",
    "TOKENIZER_HMAC_KEY",
    "TOKENIZER_KEY_ID",
    "MAX_ATTEMPTS",
    "BACKOFF_BASE_MS",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_RETENTION_HOURS",
    "NORMALIZER_CONCURRENCY",
    "NORMALIZER_YIELD_AT",
    "SCHEMA_HINTS",
    "IDEMPOTENCY_RETENTION_HOURS",
    "INGEST_BATCH_MAX",
    "INGEST_BATCHES_IN_FLIGHT",
    "LOG_LEVEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_LOCAL_HMAC_KEY = "local-dev-only-hmac-key-not-for-production"
_LOCAL_JWT_SECRET = "local-dev-only-jwt-secret-not-for-production"  # noqa: S105 - ENV=local only


class _Reader:
    """Typed accessors over an env mapping; each error names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(name, "required but not set")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, "must be an integer") from None
        if not minimum <= value <= maximum:
            raise SettingsError(name, f"must be between {minimum} and {maximum}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise SettingsError(name, f"must be one of {', '.join(allowed)}")
        return value

    def topic(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not _TOPIC_RE.match(value):
            raise SettingsError(name, "not a valid Kafka topic name")
        return value

    def url(self, name: str, *, schemes: tuple[str, ...], required: bool = True) -> str | None:
        value = self.required(name) if required else self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingsError(name, f"must be a URL with scheme {' or '.join(schemes)} and a host")
        try:
            _ = parts.port
        except ValueError:
            raise SettingsError(name, "has an invalid port") from None
        return value


def _brokers(reader: _Reader) -> str:
    value = reader.required("KAFKA_BROKERS")
    for broker in value.split(","):
        host, sep, port = broker.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError("KAFKA_BROKERS", "must be host:port[,host:port...]")
    return value


def _topics(reader: _Reader, v1: str, v2: str) -> tuple[str, ...]:
    raw = reader.raw("KAFKA_TOPICS")
    name = "KAFKA_TOPICS"
    if raw is None and reader.raw("KAFKA_TOPIC") is not None:
        raw, name = reader.raw("KAFKA_TOPIC"), "KAFKA_TOPIC"
    if raw is None:
        return (v1, v2)
    topics = tuple(t.strip() for t in raw.split(",") if t.strip())
    if not topics or not all(_TOPIC_RE.match(t) for t in topics):
        raise SettingsError(name, "must be a comma list of Kafka topic names")
    return topics


def _instance_id(r: _Reader) -> str | None:
    value = r.raw("KAFKA_GROUP_INSTANCE_ID")
    if value is not None and not _TOPIC_RE.match(value):
        raise SettingsError("KAFKA_GROUP_INSTANCE_ID", "must be 1-249 characters of A-Z a-z 0-9 . _ -")
    return value


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build and validate settings; raises :class:`SettingsError` on the first bad value."""
    r = _Reader(environ)
    env = r.choice("ENV", "local", ("local", "test", "production"))
    is_local = env == "local"

    topic_v1 = r.topic("TOPIC_RECORD_INGESTED_V1", TOPIC_V1)
    topic_v2 = r.topic("TOPIC_RECORD_INGESTED_V2", TOPIC_V2)
    dlq_fallback = r.raw("KAFKA_DLQ_TOPIC")
    kafka = KafkaSettings(
        brokers=_brokers(r),
        topics=_topics(r, topic_v1, topic_v2),
        topic_v1=topic_v1,
        topic_v2=topic_v2,
        dlq_v1=r.topic("KAFKA_DLQ_TOPIC_V1", dlq_fallback or f"{topic_v1}.dlq"),
        dlq_v2=r.topic("KAFKA_DLQ_TOPIC_V2", dlq_fallback or f"{topic_v2}.dlq"),
        consumer_group=r.text("KAFKA_CONSUMER_GROUP", "normalizer"),
        group_instance_id=_instance_id(r),
        partitions=r.integer("KAFKA_PARTITIONS", 6, minimum=1, maximum=1000),
    )

    database_url = r.url("DATABASE_URL", schemes=("postgresql", "postgres"))
    assert database_url is not None  # required=True guarantees it
    pool_min = r.integer("DB_POOL_MIN", 2, minimum=1, maximum=100)
    database = DatabaseSettings(
        url=Secret(database_url),
        pool_min=pool_min,
        pool_max=r.integer("DB_POOL_MAX", 40, minimum=pool_min, maximum=500),
    )

    s3_endpoint = r.url("S3_ENDPOINT", schemes=("http", "https"))
    assert s3_endpoint is not None
    bucket = r.text("S3_BUCKET", "raw-objects")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise SettingsError("S3_BUCKET", "not a valid bucket name")
    object_store = ObjectStoreSettings(
        endpoint=s3_endpoint,
        bucket=bucket,
        region=r.text("S3_REGION", "us-east-1"),
        access_key_id=Secret(r.text("AWS_ACCESS_KEY_ID", "exchange" if is_local else "")),
        secret_access_key=Secret(r.text("AWS_SECRET_ACCESS_KEY", "exchange" if is_local else "")),
        client=r.choice("OBJECT_STORE_CLIENT", "obstore", ("aiobotocore", "obstore")),  # type: ignore[arg-type]
    )
    if not is_local and not (object_store.access_key_id and object_store.secret_access_key):
        raise SettingsError("AWS_ACCESS_KEY_ID", "required outside ENV=local (with AWS_SECRET_ACCESS_KEY)")

    jwt_secret = r.raw("JWT_SECRET")
    if jwt_secret is None:
        if not is_local:
            raise SettingsError("JWT_SECRET", "required outside ENV=local")
        jwt_secret = _LOCAL_JWT_SECRET
    if not is_local and len(jwt_secret.encode()) < 32:
        raise SettingsError("JWT_SECRET", "must be at least 32 bytes outside ENV=local")
    auth = AuthSettings(
        jwt_secret=Secret(jwt_secret),
        issuer=r.text("JWT_ISSUER", "exchange"),
        audience=r.text("JWT_AUDIENCE", "exchange-api"),
        leeway_seconds=r.integer("JWT_LEEWAY_SECONDS", 30, minimum=0, maximum=300),
    )

    hmac_key = r.raw("TOKENIZER_HMAC_KEY")
    if hmac_key is None:
        if not is_local:
            raise SettingsError("TOKENIZER_HMAC_KEY", "required outside ENV=local")
        hmac_key = _LOCAL_HMAC_KEY
    if not is_local and len(hmac_key.encode()) < 32:
        raise SettingsError("TOKENIZER_HMAC_KEY", "must be at least 32 bytes outside ENV=local")
    key_id = r.text("TOKENIZER_KEY_ID", "local" if hmac_key == _LOCAL_HMAC_KEY else "k1")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
        raise SettingsError("TOKENIZER_KEY_ID", "must be 1-64 of A-Z a-z 0-9 . _ -")
    tokenizer = TokenizerSettings(
        hmac_key=Secret(hmac_key),
        key_id=key_id,
        url=r.url("TOKENIZER_URL", schemes=("http", "https"), required=False),
    )

    pipeline = PipelineSettings(
        max_attempts=r.integer("MAX_ATTEMPTS", 5, minimum=1, maximum=100),
        backoff_base_ms=r.integer("BACKOFF_BASE_MS", 200, minimum=1, maximum=600_000),
        outbox_batch_size=r.integer("OUTBOX_BATCH_SIZE", 500, minimum=1, maximum=10_000),
        outbox_retention_hours=r.integer("OUTBOX_RETENTION_HOURS", 24, minimum=0, maximum=24 * 365),
        normalizer_concurrency=r.integer("NORMALIZER_CONCURRENCY", 128, minimum=1, maximum=1024),
        normalizer_yield_at=r.integer("NORMALIZER_YIELD_AT", 16, minimum=0, maximum=100_000),
    )

    hints_raw = r.raw("SCHEMA_HINTS")
    hints = DEFAULT_SCHEMA_HINTS
    if hints_raw is not None:
        hints = tuple(h.strip() for h in hints_raw.split(",") if h.strip())
        if not hints or not all(re.fullmatch(r"[A-Za-z0-9._-]{1,64}", h) for h in hints):
            raise SettingsError("SCHEMA_HINTS", "must be a comma list of names")
    ingest = IngestSettings(
        schema_hints=hints,
        idempotency_retention_hours=r.integer(
            "IDEMPOTENCY_RETENTION_HOURS", 7 * 24, minimum=1, maximum=24 * 3650
        ),
        batch_max=r.integer("INGEST_BATCH_MAX", 64, minimum=1, maximum=1000),
        batches_in_flight=r.integer("INGEST_BATCHES_IN_FLIGHT", 2, minimum=1, maximum=64),
    )

    return Settings(
        env=env,  # type: ignore[arg-type]
        http=HttpSettings(
            host=r.text("HTTP_HOST", "0.0.0.0"),  # noqa: S104 - see HttpSettings.host
            port=r.integer("HTTP_PORT", 8080, minimum=1, maximum=65535),
        ),
        database=database,
        kafka=kafka,
        object_store=object_store,
        auth=auth,
        tokenizer=tokenizer,
        pipeline=pipeline,
        ingest=ingest,
        observability=ObservabilitySettings(
            log_level=r.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            otlp_endpoint=r.url("OTEL_EXPORTER_OTLP_ENDPOINT", schemes=("http", "https"), required=False),
        ),
    )


def stack_partitions(environ: Mapping[str, str]) -> int:
    """KAFKA_PARTITIONS alone, for `exchange stack up` (which runs before the rest exists)."""
    return _Reader(environ).integer("KAFKA_PARTITIONS", 6, minimum=1, maximum=1000)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file such as ``.exchange/stack.env`` (no shell expansion)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
