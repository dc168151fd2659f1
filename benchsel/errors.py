"""benchsel's own errors: the library raises these, only the CLI turns them into exit codes."""

from __future__ import annotations


class BenchselError(Exception):
    """Base of every error benchsel raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(BenchselError):
    """The user asked for something that cannot work as given (bad path, bad option, bad file)."""

    exit_code = 2


class EvalSetError(UsageError):
    """An eval set is missing or malformed. The message names the file, the line and the reason."""


class BackendUnavailable(UsageError):
    """No server answers where one was expected."""


class ModelNotFound(UsageError):
    """The backend does not have the model."""


class CapabilityError(UsageError):
    """The model cannot do what was asked (for example thinking on a model without the capability)."""


class StoreError(BenchselError):
    """The run store cannot be opened or does not hold what was asked for."""


class RunFailed(BenchselError):
    """A run finished but gave nothing to score (every request of every model failed): exit 1."""


class MissingExtra(UsageError):
    """An optional dependency is not installed; the message names the pip command that fixes it."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra - run `pip install 'benchsel[{extra}]'`")


class TransportError(BenchselError):
    """A request failed on the way, not in the model's answer: sending it again may help (the runner
    retries these, and stops a run after several in a row). Only transport and HTTP faults are raised as
    this class or its subclasses; a bug inside a backend raises as itself. ``kind`` is the short name
    stored with a failed result (``transport:<kind>``)."""

    kind = "transport"
    retryable = True


class RequestTimeout(TransportError):
    """The whole request (connecting, waiting and every byte of the answer) took longer than its limit."""

    kind = "timeout"


class ConnectionFailed(TransportError):
    """The connection was refused, reset or dropped before the answer was complete."""

    kind = "connection"


class CannotConnect(ConnectionFailed):
    """Nothing accepted the connection (refused, no route): the server is down or the address is wrong."""


class ServerBusy(TransportError):
    """The server asked to be tried later (HTTP 429 or 503)."""

    kind = "busy"


class ServerFailed(TransportError):
    """The server failed while answering (HTTP 5xx, or an error reported mid-stream)."""

    kind = "server_error"


class BadReply(TransportError):
    """The server's answer could not be read as its protocol says (not JSON, no choices)."""

    kind = "malformed"


class RequestRejected(BenchselError):
    """The server answered the request with an error that sending it again will not fix (HTTP 4xx)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = f"http_{status}" if status is not None else "rejected"


class RequestAborted(BenchselError):
    """A request in flight was abandoned because the run is stopping (Ctrl-C, SIGTERM); nothing to store."""


class RunInProgress(BenchselError):
    """Another live process is running the same command on the same run store."""


class RunTerminated(KeyboardInterrupt):
    """SIGTERM arrived during a run: handled like Ctrl-C (replies kept, engine stopped, run resumable)."""


def file_error(exc: OSError) -> UsageError:
    """One line for a file-system failure nothing more specific caught: the path, the reason, the fix."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    return UsageError(f"{where}{reason} - check the path, its permissions and the free space on its disk")
