"""Inference hosts for a multi-host run: specs from ``--host`` or a hosts.toml, ``model@host`` pins,
and the assignment of each model to one host that has it and has the memory for it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from benchsel.errors import UsageError
from benchsel.records import ModelSnapshot

__all__ = ["Assignment", "HostSpec", "assign", "can_stand_in", "load_hosts_file", "parse_host", "split_pins"]

HostBackend = Literal["ollama", "openai"]
_BACKENDS: tuple[str, ...] = ("ollama", "openai")
_HOST_FORM = "[NAME=][ollama:|openai:]URL, e.g. gpu1=http://10.0.0.5:11434"


class HostSpec(BaseModel):
    """One inference server: a name for reports and pins, its URL, its API, and optionally the memory
    its GPU has for a model (models whose weights do not fit are not assigned to it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    backend: HostBackend = "ollama"
    gpu_memory: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc:
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")

    @property
    def gpu_memory_bytes(self) -> int | None:
        from benchsel.hardware import parse_bytes

        return parse_bytes(self.gpu_memory) if self.gpu_memory else None


def parse_host(text: str, default_backend: str = "ollama") -> HostSpec:
    """A ``--host`` value: ``[NAME=][ollama:|openai:]URL``; the name defaults to the URL's host:port."""
    name, _, rest = text.rpartition("=") if "=" in text.split("://")[0] else ("", "", text)
    backend = default_backend if default_backend in _BACKENDS else "ollama"
    for prefix in _BACKENDS:
        if rest.startswith(prefix + ":") and "://" in rest:
            backend, rest = prefix, rest.removeprefix(prefix + ":")
    try:
        return HostSpec(name=name or urlparse(rest).netloc, url=rest, backend=backend)  # type: ignore[arg-type]
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"cannot read --host '{text}': {reason} - write {_HOST_FORM}") from None


def load_hosts_file(path: str | Path) -> list[HostSpec]:
    """Hosts from a TOML file of ``[[host]]`` tables (name, url, backend, gpu_memory)."""
    path = Path(path)
    try:
        entries = tomllib.loads(path.read_text()).get("host", [])
        hosts = []
        for number, entry in enumerate(entries, 1):
            where = f"[[host]] number {number}"
            hosts.append(HostSpec(**entry))
    except OSError as exc:
        raise UsageError(f"cannot read the hosts file {path}: {exc.strerror} - pass --hosts FILE") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}) - fix the file") from None
    except (TypeError, ValidationError) as exc:
        fields = "name, url, backend, gpu_memory"
        raise UsageError(f"{path}, {where}: {_first_error(exc)} - each [[host]] takes {fields}") from None
    if not hosts:
        raise UsageError(f"{path} lists no hosts - add [[host]] tables with name and url")
    return hosts


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}"
    return str(exc)


def check_unique(hosts: Sequence[HostSpec]) -> None:
    names = [host.name for host in hosts]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"host name {twice[0]} is given twice - name each host: --host NAME=URL")


def split_pins(models: Sequence[str], hosts: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """``model@host`` entries -> the model names and their pinned hosts."""
    names: list[str] = []
    pins: dict[str, str] = {}
    for entry in models:
        model, at, host = entry.rpartition("@")
        if not at or Path(entry).exists():
            names.append(entry)
            continue
        if host not in hosts:
            known = ", ".join(hosts)
            raise UsageError(f"'{entry}' pins {model} to host '{host}', which is not given - hosts: {known}")
        if model in pins and pins[model] != host:
            raise UsageError(f"{model} is pinned to two hosts ({pins[model]}, {host}) - pin it to one")
        pins[model] = host
        names.append(model)
    return tuple(dict.fromkeys(names)), pins


def can_stand_in(original: ModelSnapshot, other: ModelSnapshot) -> bool:
    """True when ``other`` serves the same weights as ``original``, so its answers share cache keys.
    OpenAI-compatible servers name no weights; the same model name there is taken as the same weights."""
    if original.digest == other.digest:
        return True
    return original.digest.startswith("openai:") and other.digest.startswith("openai:")


@dataclass(frozen=True)
class Assignment:
    """Which host runs each model first, and the other hosts able to take it over."""

    host_of: dict[str, str]
    candidates: dict[str, tuple[str, ...]]


def assign(
    models: Sequence[str],
    hosts: Sequence[HostSpec],
    inventory: Mapping[str, Mapping[str, ModelSnapshot]],
    pins: Mapping[str, str] | None = None,
) -> Assignment:
    """Each model to one host that has it (``inventory[host][model]``) and whose GPU memory holds its
    weights; pinned models to their pin; the rest to the host with the fewest models so far, in the
    order hosts were given. Larger models are placed first so they get the roomier hosts."""
    pins = pins or {}
    order = {name: index for index, name in enumerate(models)}
    candidates: dict[str, tuple[str, ...]] = {}
    for model in models:
        having = [host for host in hosts if model in inventory.get(host.name, {})]
        fitting = [host for host in having if _fits(inventory[host.name][model], host)]
        if model in pins:
            fitting = [host for host in fitting if host.name == pins[model]] + [
                host for host in fitting if host.name != pins[model]
            ]
            if not fitting or fitting[0].name != pins[model]:
                raise UsageError(_unservable(model, [h for h in hosts if h.name == pins[model]], inventory))
        if not fitting:
            raise UsageError(_unservable(model, hosts, inventory))
        candidates[model] = tuple(host.name for host in fitting)

    load = {host.name: 0 for host in hosts}
    host_of: dict[str, str] = {}

    def size(model: str) -> int:
        return max(inventory[h][model].size_bytes or 0 for h in candidates[model])

    for model in sorted(models, key=lambda m: (m not in pins, -size(m), order[m])):
        choice = candidates[model][0] if model in pins else min(candidates[model], key=lambda h: load[h])
        host_of[model] = choice
        load[choice] += 1
    return Assignment({m: host_of[m] for m in models}, candidates)


def _fits(snapshot: ModelSnapshot, host: HostSpec) -> bool:
    budget = host.gpu_memory_bytes
    return budget is None or snapshot.size_bytes is None or snapshot.size_bytes <= budget


def _unservable(
    model: str, hosts: Sequence[HostSpec], inventory: Mapping[str, Mapping[str, ModelSnapshot]]
) -> str:
    having = [host for host in hosts if model in inventory.get(host.name, {})]
    if not having:
        where = ", ".join(host.name for host in hosts)
        return f"no host has {model} ({where}) - pull it on one (`ollama pull {model}` there) or drop it"
    from benchsel.hardware import format_bytes

    sizes = ", ".join(
        f"{h.name} has {h.gpu_memory}, weights {format_bytes(inventory[h.name][model].size_bytes or 0)}"
        for h in having
    )
    return f"{model} fits on no host's GPU memory ({sizes}) - raise gpu_memory or pick a smaller quantization"
