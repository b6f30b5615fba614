"""The one typed settings object, read from the environment once and passed down.

Each setting is declared once, below: its variable (names follow the original system,
SPEC "Configuration"), type, bounds, default and meaning, as ``msgspec`` constraints on
frozen structs grouped by concern. :func:`load_settings` converts the environment into
them, :func:`reference` renders the same declarations for the README. Nothing else in the
code base reads ``os.environ``: the CLI calls :func:`load_settings` and hands the result
to the composition root.

Fail closed: without an explicit ``ENV=local`` the process runs as production, and no
setting has a development credential as its default (the local stack writes generated
secrets into its ``stack.env``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from exchange.events.topics import DLQ_SUFFIX, TOPIC_V1, TOPIC_V2

__all__ = (
    "ENV_VARS",
    "AuthSettings",
    "ConsoleSettings",
    "DatabaseSettings",
    "HttpSettings",
    "IngestSettings",
    "KafkaSettings",
    "LinkageSettings",
    "ObjectStoreSettings",
    "ObservabilitySettings",
    "PipelineSettings",
    "Secret",
    "Setting",
    "Settings",
    "SettingsError",
    "TokenizerSettings",
    "load_settings",
    "read_env_file",
    "reference",
    "reference_markdown",
    "stack_partitions",
)

Environment = Literal["local", "test", "production"]
ObjectStoreClient = Literal["aiobotocore", "obstore"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
DEFAULT_SCHEMA_HINTS: tuple[str, ...] = ("partnerA.v1", "partnerA.v2", "partnerB.v1")
SECRET_MIN_BYTES = 32

_NAME = r"^[A-Za-z0-9._-]{1,64}$"
_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_BROKERS = r"^[^,:\s]+:\d{1,5}(,\s*[^,:\s]+:\d{1,5})*$"
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class SettingsError(ValueError):
    """A setting is missing or invalid. ``str()`` is one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"invalid setting {variable}: {problem}")
        self.variable = variable
        self.problem = problem


class Secret:
    """A value that never shows up in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def var(
    name: str,
    doc: str,
    *,
    default_text: str | None = None,
    url_schemes: tuple[str, ...] = (),
    min_bytes: int = 0,
    **constraints: Any,
) -> msgspec.Meta:
    """A field's variable, meaning and bounds; ``constraints`` are msgspec's (ge, le, pattern...)."""
    extra: dict[str, Any] = {"env": name, "url_schemes": url_schemes, "min_bytes": min_bytes}
    if default_text is not None:
        extra["default_text"] = default_text
    return msgspec.Meta(description=doc, extra=extra, **constraints)


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: Annotated[str, var(
        "HTTP_HOST", "interface the HTTP server binds (loopback in local mode: the dev token has every scope)",
        default_text="127.0.0.1 / 0.0.0.0")] = ""
    port: Annotated[int, var("HTTP_PORT", "TCP port of the HTTP server", ge=1, le=65535)] = 8080
    max_body_bytes: int = 1024 * 1024
    """Request bodies above this are refused with 413 (SPEC: 1 MiB); not configurable."""


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: Annotated[Secret, var(
        "DATABASE_URL", "`postgresql://user:password@host:port/db` (the password is a secret)",
        url_schemes=("postgresql", "postgres"))]
    pool_min: Annotated[int, var("DB_POOL_MIN", "connections the asyncpg pool opens at start", ge=1, le=100)] = 2
    pool_max: Annotated[int, var(
        "DB_POOL_MAX", "upper bound of the asyncpg pool", ge=1, le=500)] = 40

    @property
    def dsn(self) -> str:
        return self.url.reveal()


class KafkaSettings(msgspec.Struct, frozen=True, kw_only=True):
    brokers: Annotated[str, var("KAFKA_BROKERS", "bootstrap servers, `host:port[,host:port]`", pattern=_BROKERS)]
    topics: Annotated[tuple[Annotated[str, msgspec.Meta(pattern=_TOPIC)], ...], var(
        "KAFKA_TOPICS", "comma list of topics the normalizer consumes",
        default_text="the v1 and v2 topics")] = ()
    topic: Annotated[str, var(
        "KAFKA_TOPIC", "one topic to consume instead (the original's name); `KAFKA_TOPICS` wins",
        default_text="unset", pattern=r"^$|" + _TOPIC)] = ""
    topic_v1: Annotated[str, var("TOPIC_RECORD_INGESTED_V1", "topic of v1 events", pattern=_TOPIC)] = TOPIC_V1
    topic_v2: Annotated[str, var("TOPIC_RECORD_INGESTED_V2", "topic of v2 events", pattern=_TOPIC)] = TOPIC_V2
    dlq_v1: Annotated[str, var(
        "KAFKA_DLQ_TOPIC_V1", "dead-letter topic of v1 events", default_text="`KAFKA_DLQ_TOPIC`, else <v1 topic>.dlq",
        pattern=r"^$|" + _TOPIC)] = ""
    dlq_v2: Annotated[str, var(
        "KAFKA_DLQ_TOPIC_V2", "dead-letter topic of v2 events", default_text="`KAFKA_DLQ_TOPIC`, else <v2 topic>.dlq",
        pattern=r"^$|" + _TOPIC)] = ""
    dlq: Annotated[str, var(
        "KAFKA_DLQ_TOPIC", "one dead-letter topic for both versions (the original's name)", default_text="unset",
        pattern=r"^$|" + _TOPIC)] = ""
    consumer_group: Annotated[str, var("KAFKA_CONSUMER_GROUP", "consumer group of the normalizer role",
                                       pattern=_NAME)] = "normalizer"
    group_instance_id: Annotated[str, var(
        "KAFKA_GROUP_INSTANCE_ID", "static group membership: unique per normalizer process, stable across its restarts",
        default_text="unset (dynamic membership)",
        pattern=r"^$|^[A-Za-z0-9._-]{1,249}$")] = ""
    unknown_topic_grace_s: Annotated[int, var(
        "KAFKA_UNKNOWN_TOPIC_GRACE_S", "a consumed topic missing this long is a fatal consumer error",
        ge=1, le=3600)] = 60
    partitions: Annotated[int, var(
        "KAFKA_PARTITIONS", "partitions per topic when `exchange stack up` creates them", ge=1, le=1000)] = 6

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic the platform uses, in a stable order (the stack creates these)."""
        return (self.topic_v1, self.topic_v2, self.dlq_v1, self.dlq_v2)


class ObjectStoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: Annotated[str, var("S3_ENDPOINT", "http(s) URL of the S3 API", url_schemes=("http", "https"))]
    access_key_id: Annotated[Secret, var("AWS_ACCESS_KEY_ID", "S3 access key")]
    secret_access_key: Annotated[Secret, var("AWS_SECRET_ACCESS_KEY", "S3 secret key")]
    bucket: Annotated[str, var("S3_BUCKET", "bucket of raw objects", pattern=_BUCKET)] = "raw-objects"
    region: Annotated[str, var("S3_REGION", "region name sent to the S3 API", pattern=_NAME)] = "us-east-1"
    client: Annotated[ObjectStoreClient, var(
        "OBJECT_STORE_CLIENT", "S3 adapter: `obstore` (measured faster, docs/performance.md) or `aiobotocore`"
    )] = "obstore"


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    jwt_secret: Annotated[Secret, var("JWT_SECRET", f"HS256 key, at least {SECRET_MIN_BYTES} bytes",
                                        min_bytes=SECRET_MIN_BYTES)]
    issuer: Annotated[str, var("JWT_ISSUER", "exact `iss` every token must carry")] = "exchange"
    audience: Annotated[str, var("JWT_AUDIENCE", "exact `aud` every token must carry")] = "exchange-api"
    leeway_seconds: Annotated[int, var("JWT_LEEWAY_SECONDS", "clock skew tolerated on exp/nbf/iat",
                                       ge=0, le=300)] = 30


class TokenizerSettings(msgspec.Struct, frozen=True, kw_only=True):
    hmac_key: Annotated[Secret, var(
        "TOKENIZER_HMAC_KEY", f"HMAC-SHA256 key of patient tokens, at least {SECRET_MIN_BYTES} bytes",
        min_bytes=SECRET_MIN_BYTES)]
    key_id: Annotated[str, var("TOKENIZER_KEY_ID", "recorded with every canonical row so keys can rotate",
                               pattern=_NAME)] = "k1"
    url: Annotated[str, var(
        "TOKENIZER_URL", "remote tokenizer, called when the tokenizer role is not in this process",
        default_text="unset", url_schemes=("http", "https"))] = ""


class LinkageSettings(msgspec.Struct, frozen=True, kw_only=True):
    hmac_key: Annotated[Secret, var(
        "LINKAGE_HMAC_KEY", f"key of the linkage tokens (ADR 0006), at least {SECRET_MIN_BYTES} bytes",
        min_bytes=SECRET_MIN_BYTES)]
    key_id: Annotated[str, var("LINKAGE_KEY_ID", "id of `LINKAGE_HMAC_KEY`, stored with every linkage token",
                               pattern=_NAME)] = "l1"
    previous_hmac_key: Annotated[Secret, var(
        "LINKAGE_PREVIOUS_HMAC_KEY", "the key being rotated out (`exchange linkage rotate`)", default_text="unset",
        min_bytes=SECRET_MIN_BYTES)] = Secret("")
    previous_key_id: Annotated[str, var("LINKAGE_PREVIOUS_KEY_ID", "id of `LINKAGE_PREVIOUS_HMAC_KEY`",
                                        default_text="unset", pattern=r"^$|" + _NAME)] = ""

    def keys(self) -> tuple[tuple[str, bytes], ...]:
        """(key id, key) of every key records are tokenized under: the active one first."""
        ring = [(self.key_id, self.hmac_key.reveal().encode())]
        if self.previous_key_id:
            ring.append((self.previous_key_id, self.previous_hmac_key.reveal().encode()))
        return tuple(ring)


class PipelineSettings(msgspec.Struct, frozen=True, kw_only=True):
    max_attempts: Annotated[int, var("MAX_ATTEMPTS", "normalizer attempts per record before the DLQ",
                                     ge=1, le=100)] = 5
    backoff_base_ms: Annotated[int, var("BACKOFF_BASE_MS", "first retry delay; doubles per attempt, with jitter",
                                        ge=1, le=600_000)] = 200
    outbox_batch_size: Annotated[int, var("OUTBOX_BATCH_SIZE", "rows one publisher claim takes",
                                          ge=1, le=10_000)] = 500
    outbox_retention_hours: Annotated[int, var("OUTBOX_RETENTION_HOURS", "published outbox rows are deleted after this",
                                               ge=0, le=24 * 365)] = 24
    normalizer_concurrency: Annotated[int, var(
        "NORMALIZER_CONCURRENCY", "records one normalizer processes at once",
        ge=1, le=1024)] = 128
    normalizer_yield_at: Annotated[int, var(
        "NORMALIZER_YIELD_AT",
        "requests in flight (now and over 0.5 s) at which background work yields to them; 0 = never",
        ge=0, le=100_000)] = 16
    job_lease_s: Annotated[int, var(
        "JOB_LEASE_S", "an admin job's owner lease, renewed every third; a job unrenewed this long is taken over",
        ge=1, le=3600)] = 30


class IngestSettings(msgspec.Struct, frozen=True, kw_only=True):
    schema_hints: Annotated[tuple[Annotated[str, msgspec.Meta(pattern=_NAME)], ...], var(
        "SCHEMA_HINTS", "comma list of the v2 `schema_hint` values accepted", min_length=1)] = DEFAULT_SCHEMA_HINTS
    idempotency_retention_hours: Annotated[int, var(
        "IDEMPOTENCY_RETENTION_HOURS", "stored ingest responses expire after this (7 days)", ge=1, le=24 * 3650)
    ] = 7 * 24
    batch_max: Annotated[int, var("INGEST_BATCH_MAX", "requests at most in one ingest transaction (ADR 0003)",
                                  ge=1, le=1000)] = 64
    batches_in_flight: Annotated[int, var("INGEST_BATCHES_IN_FLIGHT", "ingest transactions open at once",
                                          ge=1, le=64)] = 2


class ObservabilitySettings(msgspec.Struct, frozen=True, kw_only=True):
    log_level: Annotated[LogLevel, var("LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR")] = "INFO"
    otlp_endpoint: Annotated[str, var(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "traces are exported there over OTLP/HTTP when set", default_text="unset",
        url_schemes=("http", "https"))] = ""


class ConsoleSettings(msgspec.Struct, frozen=True, kw_only=True):
    session_secret: Annotated[Secret, var(
        "CONSOLE_SESSION_SECRET",
        f"console cookie key, at least {SECRET_MIN_BYTES} bytes (unset: sessions end on restart)",
        default_text="random per process", min_bytes=SECRET_MIN_BYTES)] = Secret("")
    session_ttl_s: Annotated[int, var(
        "CONSOLE_SESSION_TTL_S", "console session lifetime (capped by the token's `exp`)",
        ge=60, le=86_400)] = 3600


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    env: Annotated[Environment, var(
        "ENV", "`local`, `test` or `production`; only `local` accepts `Bearer dev`")] = "production"
    http: HttpSettings
    database: DatabaseSettings
    kafka: KafkaSettings
    object_store: ObjectStoreSettings
    auth: AuthSettings
    tokenizer: TokenizerSettings
    linkage: LinkageSettings
    pipeline: PipelineSettings
    ingest: IngestSettings
    observability: ObservabilitySettings
    console: ConsoleSettings

    @property
    def local(self) -> bool:
        """An explicit ``ENV=local``: the only mode that accepts ``Bearer dev``."""
        return self.env == "local"


_GROUPS: tuple[tuple[str, type[msgspec.Struct]], ...] = (
    ("http", HttpSettings),
    ("database", DatabaseSettings),
    ("kafka", KafkaSettings),
    ("object_store", ObjectStoreSettings),
    ("auth", AuthSettings),
    ("tokenizer", TokenizerSettings),
    ("linkage", LinkageSettings),
    ("pipeline", PipelineSettings),
    ("ingest", IngestSettings),
    ("observability", ObservabilitySettings),
    ("console", ConsoleSettings),
)


class Setting(msgspec.Struct, frozen=True):
    """One declared variable: where it lands, its meaning and its default, for readers and docs."""

    variable: str
    group: str
    field: str
    meaning: str
    default: str
    required: bool
    meta: msgspec.Meta
    kind: Any
    value: Any
    """The declared default (``msgspec.NODEFAULT`` when required)."""


def _declared(cls: type[msgspec.Struct], group: str) -> Iterator[Setting]:
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in msgspec.structs.fields(cls):
        metas = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, msgspec.Meta)]
        meta = next((m for m in metas if m.extra and "env" in m.extra), None)
        if meta is None or meta.extra is None:
            continue  # a constant, not read from the environment
        required = f.required
        if "default_text" in meta.extra:
            shown = meta.extra["default_text"]
        elif required:
            shown = "required"
        elif isinstance(f.default, tuple):
            shown = ",".join(f.default)
        else:
            shown = str(f.default)
        yield Setting(meta.extra["env"], group, f.name, meta.description or "", shown, required, meta,
                      typing.get_args(hints[f.name])[0], f.default)


def reference() -> tuple[Setting, ...]:
    """Every variable the application reads, in declaration order (the README's table)."""
    return (*_declared(Settings, ""), *(s for group, cls in _GROUPS for s in _declared(cls, group)))


ENV_VARS: tuple[str, ...] = tuple(s.variable for s in reference())


def reference_markdown() -> str:
    """The configuration table of the README (``exchange config`` prints it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in reference():
        declared_text = "default_text" in (s.meta.extra or {})
        default = "required" if s.required else s.default if declared_text else f"`{s.default}`"
        rows.append(f"| `{s.variable}` | {default} | {s.meaning} |")
    return "\n".join(rows) + "\n"


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise TypeError(f"not a settings type: {kind}")


def _raw(environ: Mapping[str, str], setting: Setting) -> Any:
    value = (environ.get(setting.variable) or "").strip()
    if not value:
        return None
    if typing.get_origin(setting.kind) is tuple:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_PHRASES = (
    (re.compile(r"Expected `int`, got `str`"), "must be an integer"),
    (re.compile(r"Expected `(?:int|array)` >= (\S+)"), r"must be at least \1"),
    (re.compile(r"Expected `(?:int|array)` <= (\S+)"), r"must be at most \1"),
    (re.compile(r"Expected `array` of length >= (\d+)"), r"must name at least \1 value"),
    (re.compile(r"Expected `str` matching regex (.+)"), r"has an invalid form (expected \1)"),
    (re.compile(r"Invalid enum value (.+)"), r"unknown value \1"),
    (re.compile(r"Object missing required field .*"), "required but not set"),
)


def _problem(error: msgspec.ValidationError) -> str:
    """msgspec's message in the words of an environment variable (its ``$.field`` path dropped)."""
    text = str(error).split(" - at ", 1)[0]
    for pattern, phrase in _PHRASES:
        if pattern.match(text):
            return pattern.sub(phrase, text)
    return text


def _check(setting: Setting, value: Any) -> None:
    extra = setting.meta.extra or {}
    text = value.reveal() if isinstance(value, Secret) else value
    if extra.get("url_schemes") and text:
        parts = urlsplit(text)
        schemes: tuple[str, ...] = extra["url_schemes"]
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingsError(setting.variable, f"must be a URL with scheme {' or '.join(schemes)} and a host")
        try:
            _ = parts.port
        except ValueError:
            raise SettingsError(setting.variable, "has an invalid port") from None
    if extra.get("min_bytes") and text and len(text.encode()) < extra["min_bytes"]:
        raise SettingsError(setting.variable, f"must be at least {extra['min_bytes']} bytes")


def _group(environ: Mapping[str, str], cls: type[msgspec.Struct], name: str) -> Any:
    settings = list(_declared(cls, name))
    raw = {s.field: v for s in settings if (v := _raw(environ, s)) is not None}
    try:
        group = msgspec.convert(raw, cls, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        path = re.search(r"\$\.(\w+)", str(exc))
        field = path.group(1) if path else ""
        if not path:  # a missing required field is named in the message itself
            missing = re.search(r"field `(\w+)`", str(exc))
            field = missing.group(1) if missing else ""
        variable = next((s.variable for s in settings if s.field == field), name)
        raise SettingsError(variable, _problem(exc)) from None
    for s in settings:
        _check(s, getattr(group, s.field))
    return group


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build and validate settings; raises :class:`SettingsError` on the first bad value."""
    env_setting = next(_declared(Settings, ""))
    env: Environment = _raw(environ, env_setting) or "production"
    if env not in typing.get_args(Environment):
        raise SettingsError("ENV", f"must be one of {', '.join(typing.get_args(Environment))}")
    groups = {name: _group(environ, cls, name) for name, cls in _GROUPS}

    http: HttpSettings = groups["http"]
    if not http.host:  # the dev token has admin scope: a local server listens on loopback only
        http = msgspec.structs.replace(http, host="127.0.0.1" if env == "local" else "0.0.0.0")  # noqa: S104
    database: DatabaseSettings = groups["database"]
    if database.pool_max < database.pool_min:
        raise SettingsError("DB_POOL_MAX", "must be at least DB_POOL_MIN")
    linkage: LinkageSettings = groups["linkage"]
    if bool(linkage.previous_key_id) != bool(linkage.previous_hmac_key):
        raise SettingsError("LINKAGE_PREVIOUS_KEY_ID", "goes with LINKAGE_PREVIOUS_HMAC_KEY: both or neither")
    if linkage.previous_key_id == linkage.key_id:
        raise SettingsError("LINKAGE_PREVIOUS_KEY_ID", "must differ from LINKAGE_KEY_ID")
    kafka: KafkaSettings = groups["kafka"]
    kafka = msgspec.structs.replace(
        kafka,
        topics=kafka.topics or ((kafka.topic,) if kafka.topic else (kafka.topic_v1, kafka.topic_v2)),
        dlq_v1=kafka.dlq_v1 or kafka.dlq or kafka.topic_v1 + DLQ_SUFFIX,
        dlq_v2=kafka.dlq_v2 or kafka.dlq or kafka.topic_v2 + DLQ_SUFFIX,
    )
    return Settings(env=env, **{**groups, "http": http, "database": database, "kafka": kafka})


def stack_partitions(environ: Mapping[str, str]) -> int:
    """KAFKA_PARTITIONS alone, for `exchange stack up` (which runs before the rest exists)."""
    partitions = next(s for s in _declared(KafkaSettings, "kafka") if s.field == "partitions")
    raw = _raw(environ, partitions)
    try:
        return int(msgspec.convert(raw, Annotated[int, partitions.meta], strict=False) if raw else partitions.value)
    except msgspec.ValidationError as exc:
        raise SettingsError(partitions.variable, _problem(exc)) from None


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
