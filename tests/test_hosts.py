"""Host specs, model@host pins and the assignment of models to hosts (pure functions, no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchsel.errors import UsageError
from benchsel.hosts import HostSpec, assign, can_stand_in, load_hosts_file, parse_host, split_pins
from benchsel.records import ModelSnapshot

GIB = 1024**3


def snap(name: str, size_gib: float | None = None, digest: str = "sha256:x") -> ModelSnapshot:
    size = int(size_gib * GIB) if size_gib is not None else None
    return ModelSnapshot(name=name, backend="ollama", digest=f"{digest}-{name}", size_bytes=size)


def test_a_host_flag_reads_name_backend_and_url() -> None:
    assert parse_host("gpu1=http://10.0.0.5:11434") == HostSpec(name="gpu1", url="http://10.0.0.5:11434")
    vllm = parse_host("vllm=openai:http://10.0.0.6:8000/v1/")
    assert (vllm.name, vllm.backend, vllm.url) == ("vllm", "openai", "http://10.0.0.6:8000/v1")
    assert parse_host("http://box:11434").name == "box:11434"
    assert parse_host("http://box:8080", default_backend="openai").backend == "openai"


def test_a_bad_host_flag_says_how_to_write_one() -> None:
    with pytest.raises(UsageError, match=r"cannot read --host 'gpu1=10.0.0.5'.*\[NAME=\]"):
        parse_host("gpu1=10.0.0.5")


def test_a_hosts_file_lists_hosts_and_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(
        '[[host]]\nname = "a"\nurl = "http://a:11434"\ngpu_memory = "8GiB"\n'
        '[[host]]\nname = "b"\nurl = "http://b:8000/v1"\nbackend = "openai"\n'
    )
    a, b = load_hosts_file(path)
    assert (a.name, a.gpu_memory_bytes, b.backend) == ("a", 8 * GIB, "openai")
    path.write_text('[[host]]\nname = "a"\nurl = "http://a:11434"\ngpu = "8GiB"\n')
    fix = r"\[\[host\]\] number 1: gpu: Extra inputs are not permitted - each \[\[host\]\] takes name, url"
    with pytest.raises(UsageError, match=fix):
        load_hosts_file(path)


def test_pins_split_off_known_hosts_only() -> None:
    models, pins = split_pins(["gemma3:4b@a", "qwen3:4b"], ["a", "b"])
    assert (models, pins) == (("gemma3:4b", "qwen3:4b"), {"gemma3:4b": "a"})
    with pytest.raises(UsageError, match="host 'c', which is not given - hosts: a, b"):
        split_pins(["gemma3:4b@c"], ["a", "b"])


def test_assignment_honours_pulled_models_memory_and_pins() -> None:
    hosts = [
        HostSpec(name="small", url="http://s:11434", gpu_memory="4GiB"),
        HostSpec(name="big", url="http://b:11434", gpu_memory="24GiB"),
        HostSpec(name="other", url="http://o:11434"),
    ]
    inventory = {
        "small": {"tiny": snap("tiny", 1), "large": snap("large", 9)},
        "big": {"tiny": snap("tiny", 1), "large": snap("large", 9), "mid": snap("mid", 3)},
        "other": {"mid": snap("mid", 3)},
    }
    plan = assign(["tiny", "large", "mid"], hosts, inventory)
    assert plan.host_of == {"large": "big", "tiny": "small", "mid": "other"}
    assert plan.candidates["large"] == ("big",)  # not pulled on "other", too big for "small"
    pinned = assign(["tiny", "mid"], hosts, inventory, {"tiny": "big", "mid": "big"})
    assert pinned.host_of == {"tiny": "big", "mid": "big"}
    assert pinned.candidates["tiny"] == ("big", "small")


def test_a_model_no_host_can_serve_is_refused_with_the_fix() -> None:
    hosts = [HostSpec(name="small", url="http://s:11434", gpu_memory="4GiB")]
    with pytest.raises(UsageError, match=r"no host has gone \(small\) - pull it on one"):
        assign(["gone"], hosts, {"small": {}})
    with pytest.raises(UsageError, match=r"fits on no host's GPU memory \(small has 4GiB, weights 9.0 GiB\)"):
        assign(["large"], hosts, {"small": {"large": snap("large", 9)}})
    with pytest.raises(UsageError, match="no host has large"):
        assign(["large"], [*hosts, HostSpec(name="b", url="http://b:1")], {"small": {}}, {"large": "b"})


def test_a_stand_in_needs_the_same_weights() -> None:
    base = ModelSnapshot(name="m", backend="ollama", digest="sha256:a")
    assert can_stand_in(base, ModelSnapshot(name="m", backend="ollama", digest="sha256:a"))
    assert not can_stand_in(base, ModelSnapshot(name="m", backend="ollama", digest="sha256:b"))
    openai = ModelSnapshot(name="m", backend="openai", digest="openai:http://a/m")
    assert can_stand_in(openai, ModelSnapshot(name="m", backend="openai", digest="openai:http://b/m"))


def test_run_with_hosts_says_how_to_fix_a_bad_host_and_refuses_pull(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchsel.cli.main import main

    db = str(tmp_path / "runs.sqlite")
    for args, line in (
        (["--host", "gpu1=10.0.0.5", "--host", "http://h:1"], "Error: cannot read --host 'gpu1=10.0.0.5'"),
        (["--host", "http://h:1", "--host", "http://g:1", "--pull"], "Error: --pull works with one host"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["run", "-m", "a", *args, "--db", db])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(line) and "Traceback" not in err
