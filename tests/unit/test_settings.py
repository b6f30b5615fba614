from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import exchange.settings as settings_module
from exchange.settings import ENV_VARS, SettingsError, load_settings, read_env_file, reference, stack_partitions

BASE = {
    "DATABASE_URL": "postgresql://exchange:s3cret-pw@127.0.0.1:5432/exchange",
    "KAFKA_BROKERS": "127.0.0.1:9092",
    "S3_ENDPOINT": "http://127.0.0.1:9000",
    "JWT_SECRET": "j" * 40,
    "TOKENIZER_HMAC_KEY": "k" * 40,
    "LINKAGE_HMAC_KEY": "l" * 40,
    "AWS_ACCESS_KEY_ID": "ak",
    "AWS_SECRET_ACCESS_KEY": "sk-secret-value",
}
LOCAL = {**BASE, "ENV": "local"}
PROD = {**BASE, "ENV": "production"}


def test_defaults_follow_the_spec() -> None:
    s = load_settings(BASE)
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


def test_without_env_the_process_runs_as_production_on_every_interface() -> None:
    s = load_settings(BASE)
    assert s.env == "production"
    assert s.http.host == "0.0.0.0"  # noqa: S104 - production containers listen on every interface


def test_only_an_explicit_local_env_is_local_and_it_binds_loopback() -> None:
    assert load_settings(LOCAL).http.host == "127.0.0.1"  # the dev token has admin scope
    everywhere = "0.0.0.0"  # noqa: S104 - what the test is about
    assert load_settings({**LOCAL, "HTTP_HOST": everywhere}).http.host == everywhere  # told otherwise
    assert load_settings({**BASE, "ENV": ""}).env == "production"


@pytest.mark.parametrize("env", [LOCAL, PROD])
@pytest.mark.parametrize(
    "missing", ["JWT_SECRET", "TOKENIZER_HMAC_KEY", "LINKAGE_HMAC_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
)
def test_no_credential_has_a_default_even_in_local(env: dict[str, str], missing: str) -> None:
    environ = dict(env)
    environ.pop(missing)
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    assert info.value.variable == missing
    assert str(info.value) == f"invalid setting {missing}: required but not set"


@pytest.mark.parametrize("env", [LOCAL, PROD])
@pytest.mark.parametrize("variable", ["JWT_SECRET", "TOKENIZER_HMAC_KEY", "LINKAGE_HMAC_KEY"])
def test_keys_shorter_than_32_bytes_are_refused(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable}: must be at least 32 bytes"):
        load_settings({**env, variable: "short"})


def test_no_development_credential_is_left_in_the_code() -> None:
    source = inspect.getsource(settings_module)
    assert "dev-only" not in source
    assert not re.search(r"(?i)local[-_]?dev", source)


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


def test_every_variable_is_declared_once_with_a_meaning() -> None:
    declared = [setting.variable for setting in reference()]
    assert len(declared) == len(set(declared)) == len(ENV_VARS)
    assert {"ENV", "DATABASE_URL", "KAFKA_BROKERS", "JWT_SECRET", "TOKENIZER_HMAC_KEY"} <= set(declared)
    assert all(setting.meaning for setting in reference())


def test_the_partition_count_alone_is_read_like_the_rest() -> None:
    assert stack_partitions({}) == load_settings(BASE).kafka.partitions
    assert stack_partitions({"KAFKA_PARTITIONS": "3"}) == 3
    with pytest.raises(SettingsError, match="KAFKA_PARTITIONS: must be at least 1"):
        stack_partitions({"KAFKA_PARTITIONS": "0"})


def test_env_file_is_parsed_without_shell(tmp_path: Path) -> None:
    f = tmp_path / "stack.env"
    f.write_text("# comment\nA=1\nB='two words'\n\nC=\"x=y\"\n")
    assert read_env_file(f) == {"A": "1", "B": "two words", "C": "x=y"}
    assert read_env_file(tmp_path / "missing.env") == {}


def test_static_membership_is_off_unless_an_instance_id_is_given() -> None:
    assert load_settings(dict(BASE)).kafka.group_instance_id == ""
    assert load_settings({**BASE, "KAFKA_GROUP_INSTANCE_ID": "normalizer-0"}).kafka.group_instance_id == "normalizer-0"
