"""Spans are recorded only while something receives them; their ids travel either way."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from exchange.ops import tracing


@pytest.mark.parametrize("exporting", [False, True])
def test_a_span_is_recorded_only_while_exported_and_always_has_ids(monkeypatch: pytest.MonkeyPatch,
                                                                    exporting: bool) -> None:
    monkeypatch.setattr(tracing, "_exporting", exporting)
    tracer = TracerProvider(sampler=tracing._WhileExported()).get_tracer("test")
    with tracer.start_as_current_span("normalize record") as span:
        context = span.get_span_context()
        assert span.is_recording() is exporting
        assert context.is_valid
        assert context.trace_flags.sampled is exporting
        traceparent = tracing.current_traceparent()
        assert traceparent is not None
        assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
        assert int(traceparent[-2:], 16) & 1 == int(exporting)  # the sampled flag
