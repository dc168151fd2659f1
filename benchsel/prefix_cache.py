"""Prompt-prefix caching that stays deterministic: every case starts from the same cached prefix.

Every case of an eval set shares its system prompt. Before the first case, each slot of the server
gets a warm-up request made of that prefix alone (the user template with no text), sent with the cache
off: it prefills cold, which gives the model's cold prefill rate, and leaves the prefix cached.

llama.cpp reuses the longest common prefix of whatever a slot holds, so a slot that just served case k
would lend case k+1 more than the system prompt when the two texts begin alike; and a cached prefix
changes greedy output (the suffix is evaluated in other batch shapes). So before every later case the
slot is put back to the warm-up's state by the same request with the cache on (a few template tokens
evaluated, one generated), and on llama.cpp requests are pinned to a slot (``id_slot``) so that this
reaches the slot the case then uses. At -j 1 the replies are then the same whatever ran before; above
-j 1 concurrent slots decode in shared batches, which no cache setting makes reproducible.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from benchsel.backends.base import Backend
from benchsel.errors import RequestRejected, TransportError
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply, RequestOptions

if TYPE_CHECKING:
    from benchsel.evalset import Prompt

__all__ = ["ColdPrefill", "PrimedBackend", "describe_setting", "effective_prompt_cache", "prime"]


def effective_prompt_cache(backend: Backend, requested: bool) -> bool:
    """The setting the backend will really run with: Ollama cannot turn its prompt cache off."""
    fixed = getattr(backend, "prompt_cache_fixed", None)
    return bool(fixed) if fixed is not None else requested


def describe_setting(options: dict[str, Any], backend: str) -> str:
    """One line for reports: the prompt-cache setting a run was made with."""
    if backend == "ollama":
        return "prompt cache: on (Ollama always reuses a cached prefix; it cannot be turned off)"
    if "prompt_cache" not in options:
        return "prompt cache: off (run made before the setting was recorded)"
    if options["prompt_cache"]:
        return "prompt cache: on (the system prompt is prefilled once per model and slot, then reused)"
    return "prompt cache: off (--no-prompt-cache: every case prefills its whole prompt)"


def _slots_of(backend: Backend, model: str) -> int | None:
    slots_for = getattr(backend, "slots_for", None)
    return slots_for(model) if callable(slots_for) else None


class PrimedBackend:
    """Wraps a backend for one model's cases: pins each request to a slot and re-primes that slot
    before every case after its first. Everything else is passed through."""

    def __init__(
        self,
        inner: Backend,
        model: str,
        warm_messages: list[dict[str, str]],
        options: RequestOptions,
        slots: int | None,
        concurrency: int,
    ) -> None:
        self.inner, self.name = inner, inner.name
        self.model, self.warm_messages = model, warm_messages
        self.cold: ColdPrefill | None = None
        self._warm_options = replace(options, num_predict=1, format="none")
        self._pinned = slots is not None
        self.slot_count = min(slots, concurrency) if slots is not None else max(1, concurrency)
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.slot_count):
            self._free.put(slot)
        self._dirty = [False] * self.slot_count
        # Re-priming works where the next case lands on the slot re-primed: a pinned slot, or the one
        # sequence of a server at -j 1.
        self._reprime = options.prompt_cache and (self._pinned or concurrency == 1)
        self._prime_all = options.prompt_cache and self._pinned

    def prime(self) -> ColdPrefill:
        """Prefill the prefix cold into every slot used; returns the cold prefill figure."""
        cold_options = replace(self._warm_options, prompt_cache=False)
        tokens = duration = 0
        for slot in range(self.slot_count if self._prime_all else 1):
            reply = self._chat(self.warm_messages, cold_options, None, slot)
            tokens += reply.prompt_eval_count
            duration += reply.prompt_eval_duration_ns
        self.cold = ColdPrefill(tokens, duration)
        return self.cold

    def unprimed(self) -> None:
        """Send the cases as they are, without re-priming (the warm-up failed)."""
        self._reprime = False

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        slot = self._free.get()
        try:
            if self._reprime and self._dirty[slot]:
                self._chat(self.warm_messages, self._warm_options, None, slot)
            self._dirty[slot] = True
            return self._chat(messages, options, schema, slot)
        finally:
            self._free.put(slot)

    def _chat(
        self,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None,
        slot: int,
    ) -> Reply:
        pinned = replace(options, slot=slot) if self._pinned else options
        return self.inner.chat(self.model, messages, pinned, schema)

    def describe(self, model: str) -> ModelSnapshot:
        return self.inner.describe(model)

    def load(self, model: str, options: RequestOptions) -> float:
        return self.inner.load(model, options)

    def memory(self, model: str) -> Memory | None:
        return self.inner.memory(model)

    def unload(self, model: str) -> None:
        self.inner.unload(model)

    def abort(self) -> None:
        self.inner.abort()

    def close(self) -> None:
        self.inner.close()


def prime(
    backend: Backend,
    model: str,
    prompt: Prompt,
    options: RequestOptions,
    concurrency: int,
    retry: Callable[[Callable[[], ColdPrefill]], ColdPrefill] | None = None,
) -> PrimedBackend:
    """A backend for ``model``'s cases whose slots hold the eval set's prompt prefix, cold-timed.
    ``retry`` wraps the warm-up (the runner's retries for transport faults). A warm-up that still
    fails leaves the cases unprimed: they meet the same fault and record it one by one."""
    primed = PrimedBackend(
        backend, model, prompt.messages(""), options, _slots_of(backend, model), concurrency
    )
    try:
        if retry is None:
            primed.prime()
        else:
            retry(primed.prime)
    except (TransportError, RequestRejected):
        primed.unprimed()
    return primed
