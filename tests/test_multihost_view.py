"""multihost.HostView: the store as one host's runner sees it (a runner.ModelStore), against a real store."""

from __future__ import annotations

from pathlib import Path

from helpers import run_record

from benchsel.contention import Contention
from benchsel.multihost import HostView
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply
from benchsel.runner import ModelStore
from benchsel.store import Store, StoredResult


def test_a_host_view_tags_what_it_writes_and_reads_the_store_as_it_is(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        store.create_run(run_record(("m",)))
        view: ModelStore = HostView(store, "h2")
        answer = StoredResult("r1", "m", "c1", 0, "key-1", Reply(content="{}"))
        view.add_result(answer)
        snapshot = ModelSnapshot(name="m", backend="openai", digest="d")
        memory = Memory(2_000, 1_000, "llama-server log")
        view.save_model("r1", snapshot, load_s=1.5, memory=memory)
        view.save_model_speed("r1", "m", cold_prefill=ColdPrefill(100, 1_000_000))
        view.save_model_speed("r1", "m", contention=Contention(False, 1.0, 0.0, 2, 2, True, ""))

        assert view.answered_keys("r1") == store.answered_keys("r1") == {"key-1"}
        cached = view.cached("key-1")
        assert cached is not None and cached.host == "h2" and cached.reply == answer.reply
        [model] = store.models("r1")
        assert (model.host, model.load_s, model.memory) == ("h2", 1.5, memory)
        assert model.cold_prefill == ColdPrefill(100, 1_000_000) and model.contention is not None
