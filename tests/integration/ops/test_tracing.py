"""One record's trace: HTTP ingest -> outbox -> Kafka -> normalizer -> tokenizer -> DB."""

from __future__ import annotations

import uuid

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from exchange.ops.tracing import add_span_processor, configure_tracing
from tests.support.app import DEV, make_settings, running_app
from tests.support.db import eventually, fetchval


async def test_one_trace_follows_a_record_from_http_to_the_canonical_write(
    stack_env: dict[str, str], isolated_kafka: dict[str, str], unique: str, canaries: dict[str, str]
) -> None:
    provider = configure_tracing("exchange", None)
    assert trace.get_tracer_provider() is provider
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))

    settings = make_settings(stack_env, **isolated_kafka)
    dsn = stack_env["DATABASE_URL"]
    body = {"source": f"trace-{unique}", "record_type": "claim",
            "patient": {"first_name": canaries["given_name"], "last_name": canaries["family_name"],
                        "dob": canaries["dob"]}, "payload": {"x": 1}}
    async with running_app(settings) as client:
        r = await client.post("/v1/ingest", json=body, headers={**DEV, "Idempotency-Key": f"{unique}-trace"})
        assert r.status_code == 202
        record_id = r.json()["record_id"]

        async def done() -> bool:
            n = await fetchval(dsn, "SELECT count(*) FROM canonical_records WHERE record_id=$1", uuid.UUID(record_id))
            return bool(n == 1)

        await eventually(done, timeout=30)

    spans = exporter.get_finished_spans()
    ingest = [s for s in spans if s.name == "POST /v1/ingest"]
    assert len(ingest) == 1
    trace_id = ingest[0].context.trace_id
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert {"POST /v1/ingest", "normalize record", "canonical write"} <= in_trace
    # The fetch and the tokenizer are marked on the record's span, in their order.
    (record,) = [s for s in spans if s.context.trace_id == trace_id and s.name == "normalize record"]
    events = [e.name for e in record.events]
    assert events.index("raw object fetched") < events.index("patient tokenized")
    (write,) = [s for s in spans if s.context.trace_id == trace_id and s.name == "canonical write"]
    assert write.parent is not None and write.parent.span_id == record.context.span_id
    # Spans carry ids and types, never identifiers.
    for span in spans:
        text = str(span.to_json())
        for value in canaries.values():
            assert value not in text
