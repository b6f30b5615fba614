"""Which consumer errors stop the consumer (``fatal``), wait for a grace (``unknown_topic``) or are
librdkafka's to retry (``ignore``). The real errors are caused against a broker in
tests/integration/pipeline/test_consumer_fatal.py; this pins the whole table."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from exchange.adapters.kafka import classify_error


@pytest.mark.parametrize(("code", "fatal_flag", "expected"), [
    (KafkaError._FATAL, False, "fatal"),  # e.g. fenced by a member with our group.instance.id
    (KafkaError.UNKNOWN_MEMBER_ID, True, "fatal"),  # anything librdkafka itself calls fatal
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, False, "fatal"),
    (KafkaError.GROUP_AUTHORIZATION_FAILED, False, "fatal"),
    (KafkaError.CLUSTER_AUTHORIZATION_FAILED, False, "fatal"),
    (KafkaError.SASL_AUTHENTICATION_FAILED, False, "fatal"),
    (KafkaError._AUTHENTICATION, False, "fatal"),
    (KafkaError.UNKNOWN_TOPIC_OR_PART, False, "unknown_topic"),
    (KafkaError._UNKNOWN_TOPIC, False, "unknown_topic"),
    (KafkaError._PARTITION_EOF, False, "ignore"),
    (KafkaError._TRANSPORT, False, "ignore"),
    (KafkaError._ALL_BROKERS_DOWN, False, "ignore"),
    (KafkaError.NOT_COORDINATOR, False, "ignore"),
    (KafkaError.REQUEST_TIMED_OUT, False, "ignore"),
    (KafkaError._MAX_POLL_EXCEEDED, False, "ignore"),
])
def test_a_consumer_error_is_classified(code: int, fatal_flag: bool, expected: str) -> None:
    assert classify_error(KafkaError(code, fatal=fatal_flag)) == expected
