"""OpenTelemetry: one SDK tracer provider per process, W3C ``traceparent`` in and out.

A record's trace starts at the HTTP ingest span; its ``traceparent`` is stored with the
outbox row, sent as a Kafka header, and continued by the normalizer (its record span,
with events for the fetch and the tokenizer and a child span for the canonical write).
Span attributes carry ids and error types only, never patient data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ("configure_tracing", "context_from_headers", "current_traceparent", "inject_headers", "tracer")

tracer = trace.get_tracer("exchange")
_lock = threading.Lock()
_provider: TracerProvider | None = None


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install the process's tracer provider once; export over OTLP/HTTP when configured."""
    global _provider  # noqa: PLW0603 - the provider is process-global by OpenTelemetry's design
    with _lock:
        if _provider is None:
            _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            if otlp_endpoint:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                    OTLPSpanExporter,
                )

                exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
                _provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(_provider)
        return _provider


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
