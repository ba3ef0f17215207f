"""What the service holds for tracing, and the version that is off: a no-op that imports nothing of OpenTelemetry.

Every layer that makes a span is handed a `Tracing` by the runtime (issuing/runtime.py), and the app's wiring
(create_app) hands the same one to the HTTP layer. Off, `span()` returns one shared object whose enter and exit
do nothing: a token request pays a few method calls for its spans. On, it is `OpenTelemetryTracing`
(service/tracing/otel.py), which is only imported when the environment asks for tracing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx
    from litestar.plugins import PluginProtocol

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = Mapping[str, AttributeValue]


class TracedSpan(Protocol):
    """The part of a span the service uses: set attributes, and skip work nobody records."""

    def is_recording(self) -> bool:
        """Whether this span is sampled (attributes set on it are kept)."""
        ...

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute."""
        ...


class _NoSpan:
    """The span of an untraced request: a reusable context manager that records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def is_recording(self) -> bool:
        """Never: nothing is recorded."""
        return False

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Dropped."""


NO_SPAN = _NoSpan()


class Tracing:
    """Tracing switched off. Also the interface the service codes against (`OpenTelemetryTracing` overrides it)."""

    enabled = False

    def span(
        self, name: str, attributes: Attributes | None = None, *, client: bool = False
    ) -> AbstractContextManager[TracedSpan]:
        """A child of the current span for the `with` block (`client`: a call to another service)."""
        return NO_SPAN

    def exemplar(self) -> dict[str, str] | None:
        """`{"trace_id": …}` of the current sampled trace, for a histogram observation; None when untraced."""
        return None

    def name_route(self, method: str, route: str, request_id: str) -> None:
        """Name the current server span by its route template (known only once the router has matched)."""

    def plugins(self) -> list[PluginProtocol]:
        """Litestar plugins that trace every request (the server span, a caller's `traceparent` honoured)."""
        return []

    def propagation_headers(self) -> dict[str, str]:
        """The headers that carry the current span to the service called next (W3C `traceparent`)."""
        return {}

    def instrument_httpx(self, client: httpx.AsyncClient) -> None:
        """Trace this httpx client's requests (JWKS fetches) and send `traceparent` on them."""

    def instrument_redis(self, client: Any) -> None:
        """Trace this redis-py client's commands (not the limiter's lean connections: they make their own spans)."""

    def describe(self) -> str:
        """What the start-up log line says about tracing."""
        return "off"

    def shutdown(self) -> None:
        """Export what is buffered and stop (called once, when the server stops)."""


NO_TRACING = Tracing()
