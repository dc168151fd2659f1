"""The one protocol every backend implements; the values that cross it are in benchsel.records."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """A place that serves models. Raise benchsel.errors types:
    BackendUnavailable (nothing answers), ModelNotFound, CapabilityError, TransportError and its
    subclasses (retryable transport faults only: timeout, connection refused/reset, 5xx, unreadable body),
    RequestRejected (4xx etc.), RequestAborted (after abort()). Any other exception is a bug and raises."""

    name: str

    def describe(self, model: str) -> ModelSnapshot:
        """Metadata for one model; raises ModelNotFound with the fix in the message."""
        ...

    def load(self, model: str, options: RequestOptions) -> float:
        """Load the model (untimed warm-up) and return the load time in seconds."""
        ...

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        """Send one chat request. ``schema`` is used when ``options.format == 'schema'``."""
        ...

    def memory(self, model: str) -> Memory | None:
        """Measured memory of the loaded model, or None when the backend cannot tell."""
        ...

    def unload(self, model: str) -> None:
        """Free the model's memory before the next model runs."""
        ...

    def abort(self) -> None:
        """End every request in flight at once (from another thread); each raises RequestAborted."""
        ...

    def close(self) -> None:
        """Release everything the backend holds (processes, connections)."""
        ...
