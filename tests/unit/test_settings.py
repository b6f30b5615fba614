from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import exchange.settings as settings_module
from exchange.settings import ENV_VARS, SettingsError, load_settings, read_env_file

BASE = {
    "DATABASE_URL": "postgresql://exchange:s3cret-pw@127.0.0.1:5432/exchange",
    "KAFKA_BROKERS": "127.0.0.1:9092",
    "S3_ENDPOINT": "http://127.0.0.1:9000",
}
PROD = {
    **BASE,
    "ENV": "production",
    "JWT_SECRET": "j" * 40,
    "TOKENIZER_HMAC_KEY": "k" * 40,
    "AWS_ACCESS_KEY_ID": "ak",
    "AWS_SECRET_ACCESS_KEY": "sk-secret-value",
}


def test_local_defaults_follow_the_spec() -> None:
    s = load_settings(BASE)
    assert s.env == "local"
    assert s.http.port == 8080
    assert s.kafka.topics == ("record.ingested.v1", "record.ingested.v2")
    assert s.kafka.dlq_v1 == "record.ingested.v1.dlq"
    assert s.kafka.dlq_v2 == "record.ingested.v2.dlq"
    assert s.kafka.partitions == 6
    assert s.object_store.bucket == "raw-objects"
    assert s.pipeline.max_attempts == 5
    assert s.pipeline.backoff_base_ms == 200
    assert s.ingest.idempotency_retention_hours == 7 * 24
    assert s.ingest.schema_hints == ("partnerA.v1", "partnerA.v2", "partnerB.v1")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", None),
        ("DATABASE_URL", "mysql://x@y/z"),
        ("KAFKA_BROKERS", None),
        ("KAFKA_BROKERS", "no-port"),
        ("S3_ENDPOINT", "ftp://host"),
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("ENV", "staging"),
        ("MAX_ATTEMPTS", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("KAFKA_TOPICS", "bad topic!"),
        ("S3_BUCKET", "Bad_Bucket"),
        ("TOKENIZER_URL", "not a url"),
        ("KAFKA_GROUP_INSTANCE_ID", "pod 1"),
        ("KAFKA_GROUP_INSTANCE_ID", "x" * 250),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str | None) -> None:
    env = dict(BASE)
    if value is None:
        env.pop(variable)
    else:
        env[variable] = value
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("missing", ["JWT_SECRET", "TOKENIZER_HMAC_KEY", "AWS_ACCESS_KEY_ID"])
def test_production_requires_real_secrets(missing: str) -> None:
    env = dict(PROD)
    env.pop(missing)
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert info.value.variable == missing


def test_production_refuses_a_short_hmac_key() -> None:
    with pytest.raises(SettingsError, match="TOKENIZER_HMAC_KEY"):
        load_settings({**PROD, "TOKENIZER_HMAC_KEY": "short"})


def test_local_accepts_a_short_hmac_key() -> None:
    assert load_settings({**BASE, "TOKENIZER_HMAC_KEY": "short"}).tokenizer.hmac_key.reveal() == "short"


def test_secrets_never_show_in_repr_or_errors() -> None:
    s = load_settings(PROD)
    text = repr(s) + str(s)
    for secret in ("s3cret-pw", "j" * 40, "k" * 40, "sk-secret-value"):
        assert secret not in text
    with pytest.raises(SettingsError) as info:
        load_settings({**PROD, "JWT_SECRET": "tiny-secret"})
    assert "tiny-secret" not in str(info.value)


def test_single_kafka_topic_and_dlq_fallback() -> None:
    s = load_settings({**BASE, "KAFKA_TOPIC": "record.ingested.v2", "KAFKA_DLQ_TOPIC": "all.dlq"})
    assert s.kafka.topics == ("record.ingested.v2",)
    assert s.kafka.dlq_v1 == s.kafka.dlq_v2 == "all.dlq"


def test_every_variable_read_is_listed() -> None:
    module = settings_module
    source = inspect.getsource(module.load_settings) + inspect.getsource(module._brokers)
    source += inspect.getsource(module._topics)
    read = set(re.findall(r'r\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'SettingsError\("([A-Z][A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "KAFKA_BROKERS", "JWT_SECRET"} <= read
    assert read <= set(ENV_VARS)


def test_env_file_is_parsed_without_shell(tmp_path: Path) -> None:
    f = tmp_path / "stack.env"
    f.write_text("# comment\nA=1\nB='two words'\n\nC=\"x=y\"\n")
    assert read_env_file(f) == {"A": "1", "B": "two words", "C": "x=y"}
    assert read_env_file(tmp_path / "missing.env") == {}


def test_static_membership_is_off_unless_an_instance_id_is_given() -> None:
    assert load_settings(dict(BASE)).kafka.group_instance_id is None
    assert load_settings({**BASE, "KAFKA_GROUP_INSTANCE_ID": "normalizer-0"}).kafka.group_instance_id == "normalizer-0"
