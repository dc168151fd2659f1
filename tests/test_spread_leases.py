"""A run spread over several hosts, or over a Ray cluster, holds the store's lease on its command as a
one-machine run does: while it runs, a second process of the same command is refused and `runs` shows
it running; once it is gone, it shows as interrupted. The backends here only describe models: each
test stops its run when it starts, before any request would be sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchsel import raymode, runner
from benchsel.errors import RunInProgress
from benchsel.evalset import load_evalset
from benchsel.hosts import parse_host
from benchsel.multihost import run_on_hosts
from benchsel.raymode import EngineChoice, NodeResources, _RayRun
from benchsel.records import ModelSnapshot, RequestOptions
from benchsel.store import Store

MODELS = ("smollm2:135m", "gemma3:270m")


class _Stop(Exception):
    pass


class _Describes:
    """A host that has every model; nothing else is asked of it before the run starts."""

    name = "ollama"

    def describe(self, model: str) -> ModelSnapshot:
        return ModelSnapshot(model, "ollama", f"sha256:{model}")

    def close(self) -> None:
        pass


def _spec() -> runner.RunSpec:
    evalset = load_evalset("extraction-v1")
    return runner.RunSpec(models=MODELS, evalset=evalset, options=RequestOptions(), limit=2)


def _checks_while_running(store: Store, seen: list[str]) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        if isinstance(event, runner.RunStarted):
            [record] = store.runs()
            seen.append(record.status)
            with (
                pytest.raises(RunInProgress, match="the same command is already running in process"),
                store.lease(event.run.run_key),
            ):
                pass
            raise _Stop

    return on_event


def _after(store: Store, seen: list[str]) -> None:
    assert seen == ["running"]  # not shown as interrupted while its process holds the lease
    [record] = store.runs()
    assert record.status == "interrupted"  # the process let go: a re-run resumes it
    with store.lease(record.run_key):
        pass


def test_a_multi_host_run_holds_the_lease_of_its_command(tmp_path: Path) -> None:
    hosts = [parse_host("a=http://127.0.0.1:9"), parse_host("b=http://127.0.0.1:10")]
    seen: list[str] = []
    with Store(tmp_path / "runs.sqlite") as store:
        with pytest.raises(_Stop):
            run_on_hosts(
                _spec(), hosts, store, on_event=_checks_while_running(store, seen),
                make_backend=lambda host: _Describes(),  # type: ignore[arg-type,return-value]
            )  # fmt: skip
        _after(store, seen)


def test_a_ray_run_holds_the_lease_of_its_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    described = {model: _Describes().describe(model) for model in MODELS}
    monkeypatch.setattr(_RayRun, "_describe_all", lambda self: described)  # no cluster needed before start
    monkeypatch.setattr(raymode, "check_fits", lambda resources, what: None)
    seen: list[str] = []
    with Store(tmp_path / "runs.sqlite") as store:
        ray_run = _RayRun(
            _spec(), store, "auto", EngineChoice(), NodeResources(), _checks_while_running(store, seen), {}
        )
        with pytest.raises(_Stop):
            ray_run.run()
        _after(store, seen)
