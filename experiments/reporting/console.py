"""Console hygiene for the user-facing recipes: our progress and results, not the libraries'.

:func:`quiet_libraries` silences, while it is active, what the libraries under the recipes print
on their own: Lightning's device banners and product tips (INFO log records), torch's notes on
deprecated registrations that torchao's import triggers (WARNING log records of
``torch.utils._pytree``), transformers' progress bars (``Loading weights``), and deprecation or
"possible user" warnings raised inside torch, Lightning, Sionna, CompressAI and jsonargparse.
Warnings raised by semcom's own code still show.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["quiet_libraries"]

#: Loggers whose INFO records (banners, tips) are hidden.
LIBRARY_LOGGERS = ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch")
#: Loggers whose WARNING records (notes to library authors, not to users) are hidden too.
LIBRARY_NOTE_LOGGERS = ("torch.utils._pytree",)
#: Modules whose warnings are hidden.
LIBRARY_MODULES = r"(pytorch_lightning|lightning_fabric|lightning|torch|sionna|compressai|" \
                  r"jsonargparse|torchmetrics|pytorch_msssim)(\..*)?$"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Hide library banners, tips and warnings inside the ``with`` block."""
    import pytorch_lightning  # noqa: F401 - creates its loggers, whose levels are set below

    names = set(LIBRARY_LOGGERS) | {
        n for n in logging.root.manager.loggerDict
        if n.split(".")[0] in {x.split(".")[0] for x in LIBRARY_LOGGERS}}
    saved = {name: logging.getLogger(name).level for name in names | set(LIBRARY_NOTE_LOGGERS)}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in LIBRARY_NOTE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    hf_bars = _transformers_progress_bars(False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=LIBRARY_MODULES)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        if hf_bars:
            _transformers_progress_bars(True)


def _transformers_progress_bars(on: bool) -> bool:
    """Turn transformers' progress bars on or off where it is installed; returns whether they
    were on."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return False
    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if on else hf_logging.disable_progress_bar)()
    return was
