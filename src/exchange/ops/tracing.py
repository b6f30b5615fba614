"""OpenTelemetry: one SDK tracer provider per process, W3C ``traceparent`` in and out.

A record's trace starts at the HTTP ingest span; its ``traceparent`` is stored with the
outbox row, sent as a Kafka header, and continued by the normalizer (its record span,
with events for the fetch and the tokenizer and a child span for the canonical write).
Span attributes carry ids and error types only, never patient data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

__all__ = ("add_span_processor", "configure_tracing", "context_from_headers", "current_traceparent",
           "inject_headers", "tracer")

tracer = trace.get_tracer("exchange")
_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporting = False


class _WhileExported(Sampler):
    """Records spans only while something receives them (OTLP configured, or a processor added
    with ``add_span_processor``). Unrecorded spans still get ids, so a record's ``traceparent``
    travels as before; what is skipped is building attributes and events nobody reads, which
    cost a request or a record several times an unrecorded span."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str, *args: Any,
                      **kwargs: Any) -> SamplingResult:
        chosen = ALWAYS_ON if _exporting else ALWAYS_OFF
        return chosen.should_sample(parent_context, trace_id, name, *args, **kwargs)

    def get_description(self) -> str:
        return "WhileExported"


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install the process's tracer provider once; export over OTLP/HTTP when configured."""
    global _provider  # noqa: PLW0603 - the provider is process-global by OpenTelemetry's design
    with _lock:
        created = _provider is None
        if _provider is None:
            _provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       sampler=_WhileExported())
            trace.set_tracer_provider(_provider)
    if created and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")))
    assert _provider is not None
    return _provider


def add_span_processor(processor: SpanProcessor) -> None:
    """Send finished spans to ``processor`` too; from now on spans are recorded."""
    global _exporting  # noqa: PLW0603 - see configure_tracing
    if _provider is None:
        raise RuntimeError("configure_tracing first")
    with _lock:
        _provider.add_span_processor(processor)
        _exporting = True


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None outside one).

    Formatted here, as the W3C propagator formats it, rather than through ``inject``: the
    global propagator also runs baggage and builds a carrier, on every ingest request."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    inject(headers)
    return headers


def context_from_headers(headers: Mapping[str, str]) -> Context | None:
    """The remote parent carried by ``headers``; None (a new trace) when they carry none."""
    if "traceparent" not in headers:
        return None
    return extract(dict(headers))
