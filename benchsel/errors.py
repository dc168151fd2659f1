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
    """A request failed on the way (not the model's answer). ``kind`` says how; ``retryable`` says
    whether sending it again can help."""

    def __init__(self, kind: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


class RequestRejected(BenchselError):
    """The server answered the request with an error that sending it again will not fix."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
