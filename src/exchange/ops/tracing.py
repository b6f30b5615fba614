"""OpenTelemetry: a tracer provider per process, W3C traceparent in and out."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

__all__ = ("configure_tracing", "current_traceparent", "tracer")

tracer = trace.get_tracer("exchange")


def configure_tracing(service_name: str) -> TracerProvider:
    """Install an SDK tracer provider (ids are real; export is wired when an endpoint is set)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    return provider


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")
