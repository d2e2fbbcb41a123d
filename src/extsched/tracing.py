"""W3C trace context for runs, and OpenTelemetry export when configured (SPEC §3, §6).

One trace per run: the trace id is the run id's 128 bits, so every attempt of a run, on any
worker and either backend, lands in the same trace without the trace being stored anywhere.
Span ids that other processes must know (the fire, the run, each attempt) are derived from the
run id too, which lets an attempt made by one worker hang under the run span that another
worker ends later:

    fire (scheduled_for -> finished)
      run (started -> finished)
        attempt N
          runner call   <- its context is the ``traceparent`` the Runner gets and forwards

Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) nothing is
exported and the ``traceparent`` names the attempt's span. With it, spans are exported by the
OpenTelemetry SDK's OTLP/HTTP exporter, configured by the standard ``OTEL_*`` variables.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# The next ids the SDK should use: set just around the creation of a span with a derived id.
_next_ids: contextvars.ContextVar[tuple[int | None, int | None]] = contextvars.ContextVar(
    "extsched_next_span_ids", default=(None, None)
)


class _DerivedIds(IdGenerator):
    """Random ids, except where a span must carry an id derived from its run."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        span_id = _next_ids.get()[1]
        return span_id if span_id is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        trace_id = _next_ids.get()[0]
        return trace_id if trace_id is not None else self._random.generate_trace_id()


@dataclass
class _State:
    provider: TracerProvider | None = None
    configured: bool = False


_state = _State()


def trace_id_of(run_id: uuid.UUID) -> int:
    """The run's trace id: the run id's 128 bits."""
    return run_id.int


def span_id_of(run_id: uuid.UUID, label: str) -> int:
    """A stable, non-zero 64-bit span id for ``label`` (``fire``, ``run``, ``attempt:N``)."""
    digest = hashlib.sha256(run_id.bytes + label.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def traceparent(trace_id: int, span_id: int) -> str:
    """The W3C ``traceparent`` value (version 00, sampled)."""
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def use_provider(provider: TracerProvider | None) -> None:
    """Export through ``provider`` (tests; None turns export off), instead of the environment."""
    _state.provider = provider
    _state.configured = True


def new_provider(exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider with run-derived ids, exporting in batches to ``exporter`` (default: the
    OTLP/HTTP exporter configured by the ``OTEL_*`` variables)."""
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "extsched")}),
        id_generator=_DerivedIds(),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _provider() -> TracerProvider | None:
    if not _state.configured:
        _state.configured = True
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if not disabled and any(os.environ.get(name) for name in _ENDPOINT_VARS):
            _state.provider = new_provider()
    return _state.provider


def reset() -> None:
    """Flush and drop the provider; the environment is read again on next use (tests)."""
    provider = _state.provider
    if provider is not None:
        provider.shutdown()
    _state.provider = None
    _state.configured = False


def enabled() -> bool:
    return _provider() is not None


def force_flush() -> None:
    """Export what is buffered now (e.g. before a process exits)."""
    provider = _state.provider
    if provider is not None:
        provider.force_flush()


def _ns(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000_000)


def _parent(run_id: uuid.UUID, label: str) -> Any:
    parent = SpanContext(
        trace_id=trace_id_of(run_id),
        span_id=span_id_of(run_id, label),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextlib.contextmanager
def _derived(run_id: uuid.UUID, label: str) -> Iterator[None]:
    token = _next_ids.set((trace_id_of(run_id), span_id_of(run_id, label)))
    try:
        yield
    finally:
        _next_ids.reset(token)


class AttemptSpan:
    """The spans of one attempt; ``traceparent`` goes on the Runner call."""

    def __init__(self, run_id: uuid.UUID, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.traceparent = traceparent(
            trace_id_of(run_id), span_id_of(run_id, f"attempt:{attempt}")
        )
        self._spans: list[trace.Span] = []

    def outcome(self, status: str, http_status: int | None, error: str | None) -> None:
        for span in self._spans:
            span.set_attribute("extsched.run.status", status)
            if http_status is not None:
                span.set_attribute("http.response.status_code", http_status)
            if error:
                span.set_status(trace.Status(trace.StatusCode.ERROR, error[:200]))


@contextlib.contextmanager
def attempt(
    run_id: uuid.UUID, attempt_no: int, attributes: dict[str, str | int]
) -> Iterator[AttemptSpan]:
    """An attempt span (child of the run's) around a Runner call span (its child)."""
    current = AttemptSpan(run_id, attempt_no)
    provider = _provider()
    if provider is None:
        yield current
        return
    tracer = provider.get_tracer("extsched")
    with _derived(run_id, f"attempt:{attempt_no}"):
        attempt_span = tracer.start_span(
            "attempt", context=_parent(run_id, "run"), attributes=attributes
        )
    call = tracer.start_span(
        "runner call",
        context=trace.set_span_in_context(attempt_span),
        kind=SpanKind.CLIENT,
        attributes={"extsched.run.attempt": attempt_no},
    )
    current._spans = [call, attempt_span]
    current.traceparent = traceparent(
        call.get_span_context().trace_id, call.get_span_context().span_id
    )
    try:
        yield current
    finally:
        call.end()
        attempt_span.end()


def run_finished(
    run_id: uuid.UUID,
    *,
    scheduled_for: datetime,
    started_at: datetime,
    finished_at: datetime,
    attributes: dict[str, str | int],
) -> None:
    """Emit the run's ``fire`` and ``run`` spans once it is finished (they hold its attempts)."""
    provider = _provider()
    if provider is None:
        return
    tracer = provider.get_tracer("extsched")
    start_fire = min(scheduled_for, started_at, finished_at)
    with _derived(run_id, "fire"):
        fire = tracer.start_span(
            "fire",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            start_time=_ns(start_fire),
            attributes=attributes,
        )
    with _derived(run_id, "run"):
        run = tracer.start_span(
            "run",
            context=trace.set_span_in_context(fire),
            start_time=_ns(min(started_at, finished_at)),
            attributes=attributes,
        )
    run.end(end_time=_ns(finished_at))
    fire.end(end_time=_ns(finished_at))
