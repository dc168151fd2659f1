"""The training libraries (transformers, datasets, peft, trl) kept quiet while benchsel uses them."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator

__all__ = ["quiet_training_libraries"]


@contextlib.contextmanager
def quiet_training_libraries() -> Iterator[None]:
    """Keep the libraries' deprecation notices, advice ("use_cache=True is incompatible with gradient
    checkpointing") and dataset progress bars off the user's terminal: none needs their action, and
    benchsel says what each phase is doing itself."""
    import datasets
    import transformers

    # transformers' progress-bar switches carry no annotations: typed here, where benchsel calls them
    disable_transformers_bars: Callable[[], None] = transformers.utils.logging.disable_progress_bar
    enable_transformers_bars: Callable[[], None] = transformers.utils.logging.enable_progress_bar

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity(logging.ERROR)
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers_bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    disable_transformers_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|transformers|peft|trl)")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()
        if transformers_bars_were_on:
            enable_transformers_bars()
