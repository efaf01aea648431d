"""semcom.jscc: deep joint source-channel coding of images over ``phy`` links.

Codecs (``jscc.models``), image data (``jscc.data``), Lightning training (``jscc.lightning``)
and the separate digital baselines (``jscc.baselines``).
"""

from __future__ import annotations

from .models import JSCCCodec, available_codecs, build_codec, register_codec

__all__ = ["JSCCCodec", "available_codecs", "build_codec", "register_codec"]
