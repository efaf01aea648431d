"""SwinJSCC: a Swin-Transformer deep JSCC codec with SNR-adaptive channel gates.

Architecture (after Yang et al., "SwinJSCC", IEEE TCCN 2024, and WITT, ICASSP 2023; written
from the papers' descriptions, plain PyTorch):

* **Encoder.** Patch embedding (conv, kernel = stride = 2, optional LayerNorm) → ``n`` stages of
  Swin blocks; stage ``k > 0`` starts with patch merging (2×2 neighbours → LayerNorm → Linear),
  so there are ``i = n`` downsamplings by 2 in total. LayerNorm and a Linear head map the tokens
  to ``C`` latent channels; the latent is the real tensor ``[B, C, H/2^i, W/2^i]``.
* **Decoder.** The mirror image: Linear from ``C`` → stages in reverse order, each followed by a
  patch split (LayerNorm → Linear to ``4·d'`` → 2×2 pixel shuffle) that doubles the resolution;
  the last split goes to 3 pixel channels, followed by a sigmoid, so images are in [0, 1].
* **Swin blocks** alternate window attention (W-MSA) and shifted-window attention (SW-MSA, cyclic
  shift by ``window // 2`` plus an attention mask that keeps tokens from different image regions
  apart), with a learned relative position bias per head, pre-LayerNorm, MLP ratio 4, GELU.
* **SNR adaptation (SA, "channel ModNet")** when ``snr_adaptive``: a small MLP maps the channel
  SNR (dB, one value per example) to sigmoid gates over the feature channels, which multiply
  every token. Encoder: one gate at the end of every stage (for the last stage after the final
  LayerNorm, right before the latent head). Decoder: one gate at the start of every stage
  (after the latent projection / after each patch split). The MLP input is ``snr_db / 20``.

The model does **not** normalize the latent's power: :class:`phy.AnalogLink` does that per image.

Latent channels and CBR. With ``i`` downsamplings the latent holds ``C·H·W / 4^i`` reals, i.e.
``C·H·W / (2·4^i)`` complex channel uses, so ``CBR = C / (2^(2i)·3·2)`` and
``C = cbr·6·4^i`` must be a positive integer: ``cbr = k/96`` for ``i = 2`` ("small", "cifar"),
``k/1536`` for ``i = 4`` ("base", "large"). (If ``C·H·W/4^i`` is odd, :meth:`cbr` is slightly
larger because the link pads one zero; this needs an odd ``C`` and an odd latent area.)

Image sizes. ``H`` and ``W`` must be multiples of ``2^i``. A stage at token resolution
``(h, w)`` uses the configured window ``M`` if ``min(h, w) > M``; otherwise, as in Swin, the
window is clipped to ``min(h, w)`` and that stage does not shift. Every stage resolution must be
divisible by its window; multiples of ``2^i·M`` always work (32 px for "small" and "cifar" is
fine, 256 px for "base"/"large"; smaller square inputs work through clipping, e.g. 128 or 64 px).
Other sizes raise ``ValueError``; there is no padding. The relative position bias table is sized
for ``M``, and a clipped window uses the central part of the same table.

Configurations (``config=``):

======== ======================= ============ ============== ====== ===
name     embed dims              depths       heads          window  i
======== ======================= ============ ============== ====== ===
small    (32, 64)                (2, 2)       (2, 4)         4       2
cifar    (128, 256)              (2, 4)       (4, 8)         2       2
base     (128, 192, 256, 320)    (2, 2, 2, 2) (4, 6, 8, 10)  8       4
large    (128, 192, 256, 320)    (2, 2, 6, 2) (4, 6, 8, 10)  8       4
======== ======================= ============ ============== ====== ===

"small" is a CPU-sized config for 32..64 px crops; "cifar" is the paper's CIFAR-10 config;
"base"/"large" are the paper's high-resolution (256×256, DIV2K) configs. The decoder uses the
same stages in reverse order (``depths`` reversed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .base import JSCCCodec, as_float_images
from .registry import register_codec

__all__ = [
    "SWIN_CONFIGS",
    "PatchMerging",
    "PatchSplit",
    "SNRGate",
    "SwinBlock",
    "SwinJSCC",
    "SwinJSCCConfig",
    "WindowAttention",
    "relative_position_index",
    "shifted_window_mask",
    "stage_window",
]

#: Added to the attention logits of token pairs that the shifted-window mask separates.
MASK_VALUE = -1.0e4


@dataclass(frozen=True)
class SwinJSCCConfig:
    """Encoder stages (the decoder mirrors them)."""

    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    mlp_ratio: float = 4.0

    @property
    def num_downsamplings(self) -> int:
        """Patch embedding (÷2) plus one patch merging per later stage."""
        return len(self.embed_dims)

    def validate(self) -> None:
        n = len(self.embed_dims)
        if n < 1 or len(self.depths) != n or len(self.num_heads) != n:
            raise ValueError(
                "embed_dims, depths and num_heads must be non-empty and of equal length, got "
                f"{self.embed_dims}, {self.depths}, {self.num_heads}"
            )
        for d, h, k in zip(self.embed_dims, self.num_heads, self.depths, strict=True):
            if d < 1 or h < 1 or d % h:
                raise ValueError(
                    f"each embed dim must be a positive multiple of its head count, got {d} "
                    f"with {h} heads"
                )
            if k < 1:
                raise ValueError(f"depths must be positive, got {self.depths}")
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")


SWIN_CONFIGS: dict[str, SwinJSCCConfig] = {
    "small": SwinJSCCConfig((32, 64), (2, 2), (2, 4), 4),
    "cifar": SwinJSCCConfig((128, 256), (2, 4), (4, 8), 2),
    "base": SwinJSCCConfig((128, 192, 256, 320), (2, 2, 2, 2), (4, 6, 8, 10), 8),
    "large": SwinJSCCConfig((128, 192, 256, 320), (2, 2, 6, 2), (4, 6, 8, 10), 8),
}


# --------------------------------------------------------------------------------------------
# Window helpers
# --------------------------------------------------------------------------------------------


def stage_window(h: int, w: int, window: int) -> tuple[int, bool]:
    """Window used at token resolution ``(h, w)`` and whether shifting is allowed there.

    As in Swin: if the resolution is not larger than the window, the window is clipped to
    ``min(h, w)`` and the shifted blocks of that stage do not shift.
    """
    if min(h, w) <= window:
        return min(h, w), False
    return window, True


@lru_cache(maxsize=64)
def relative_position_index(ws: int, table_window: int) -> torch.Tensor:
    """``[ws², ws²]`` indices (CPU, cached) into a ``(2·table_window − 1)²`` bias table.

    Entry ``(p, q)`` addresses the relative offset ``(dy, dx) = pos(p) − pos(q)``, stored at row
    ``(dy + M − 1)·(2M − 1) + (dx + M − 1)`` with ``M = table_window``; ``ws <= M`` is required,
    so a clipped window reads the central part of the table.
    """
    if not 1 <= ws <= table_window:
        raise ValueError(f"window {ws} must be in [1, {table_window}]")
    ys, xs = torch.meshgrid(torch.arange(ws, device="cpu"), torch.arange(ws, device="cpu"),
                            indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[:, None] - ys[None, :] + table_window - 1
    dx = xs[:, None] - xs[None, :] + table_window - 1
    return dy * (2 * table_window - 1) + dx


@lru_cache(maxsize=64)
def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Additive mask ``[nW, ws², ws²]`` (CPU, cached) for a cyclic shift by ``shift`` tokens.

    After ``torch.roll(x, (-shift, -shift))`` the windows on the bottom and right borders hold
    tokens that were not neighbours in the image. Label the shifted map by region (rows
    ``[0, h − ws)``, ``[h − ws, h − shift)``, ``[h − shift, h)``, the same for columns); token
    pairs within a window whose labels differ get :data:`MASK_VALUE`, others 0.
    Windows are numbered row-major, tokens within a window row-major.
    """
    if h % ws or w % ws or not 0 < shift < ws:
        raise ValueError(f"bad shifted-window geometry h={h}, w={w}, ws={ws}, shift={shift}")
    labels = torch.zeros(h, w, dtype=torch.long, device="cpu")
    bounds_h = (0, h - ws, h - shift, h)
    bounds_w = (0, w - ws, w - shift, w)
    region = 0
    for a in range(3):
        for b in range(3):
            labels[bounds_h[a]:bounds_h[a + 1], bounds_w[b]:bounds_w[b + 1]] = region
            region += 1
    win = _window_partition(labels[None, :, :, None], ws)[0, :, :, 0]  # [nW, ws²]
    differ = win[:, :, None] != win[:, None, :]
    return torch.zeros(differ.shape, device="cpu").masked_fill(differ, MASK_VALUE)


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[B, H, W, C]`` → ``[B, nW, ws², C]`` (windows row-major, tokens row-major)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // ws) * (w // ws), ws * ws, c)


def _window_merge(x: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`: ``[B, nW, ws², C]`` → ``[B, H, W, C]``."""
    b, _, _, c = x.shape
    x = x.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        dim: token width.
        num_heads: heads (``dim`` must be divisible by it).
        window_size: largest window ``M``; the bias table has ``(2M − 1)²`` rows per head.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.dim, self.num_heads, self.window_size = dim, num_heads, window_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)

    def position_bias(self, ws: int) -> torch.Tensor:
        """``[heads, ws², ws²]`` relative position bias for a ``ws × ws`` window."""
        idx = relative_position_index(ws, self.window_size).to(self.bias_table.device)
        n = ws * ws
        return self.bias_table[idx.reshape(-1)].reshape(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, ws: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, nW, ws², dim]``; ``mask``: ``[nW, ws², ws²]`` additive or ``None``."""
        b, nw, n, c = x.shape
        hd = c // self.num_heads
        qkv = self.qkv(x).reshape(b, nw, n, 3, self.num_heads, hd).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # [B, nW, heads, N, hd]
        bias = self.position_bias(ws)  # [heads, N, N]
        if mask is not None:
            bias = bias[None] + mask[:, None].to(bias)  # [nW, heads, N, N]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention + MLP, both residual.

    ``shifted`` blocks roll the token map by ``window // 2`` before attention (unless the stage
    window is clipped, see :func:`stage_window`) and mask pairs from different regions.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window_size, self.shifted = window_size, shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.norm2 = nn.LayerNorm(dim)
        hidden = round(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``x``: tokens ``[B, h·w, dim]`` in row-major order."""
        b, _, c = x.shape
        ws, can_shift = stage_window(h, w, self.window_size)
        shift = ws // 2 if (self.shifted and can_shift) else 0
        y = self.norm1(x).reshape(b, h, w, c)
        mask = None
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(h, w, ws, shift).to(x.device)
        y = self.attn(_window_partition(y, ws), ws, mask)
        y = _window_merge(y, ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2×2 neighbouring tokens → one token: ``[B, h·w, d]`` → ``[B, h·w/4, d_out]``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
        return self.reduce(self.norm(x.reshape(b, (h // 2) * (w // 2), 4 * c)))


class PatchSplit(nn.Module):
    """One token → 2×2 tokens (the inverse layout of :class:`PatchMerging`).

    ``[B, h·w, d]`` → LayerNorm → Linear to ``4·d_out`` → ``[B, 4·h·w, d_out]``.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 4 * out_dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b = x.shape[0]
        y = self.expand(self.norm(x)).reshape(b, h, w, 2, 2, self.out_dim)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(b, 4 * h * w, self.out_dim)


class SNRGate(nn.Module):
    """SNR (dB, ``[B]``) → MLP → sigmoid gates ``[B, 1, dim]`` that scale every token."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.mlp((snr_db / 20.0)[:, None].to(x.dtype)))
        return x * gate[:, None, :]


class _Stage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, shifted=bool(j % 2), mlp_ratio=mlp_ratio)
            for j in range(depth)
        )

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, h, w)
        return x


# --------------------------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------------------------


def _channels_for_cbr(cbr: float, i: int) -> int:
    denom = 6 * 4**i
    c = float(cbr) * denom
    k = round(c) if math.isfinite(c) else 0
    if k < 1 or abs(c - k) > 1e-6 * max(1.0, c):
        raise ValueError(
            f"cbr must be k/{denom} for a positive integer k (C = cbr*2^(2i)*3*2 latent channels "
            f"with i={i} downsamplings), e.g. 1/{denom} (C=1), {2}/{denom} (C=2), ...; "
            f"got cbr={cbr!r} (C={c:g})"
        )
    return k


@register_codec("swinjscc")
class SwinJSCC(JSCCCodec):
    """Swin-Transformer JSCC codec (see the module docstring for the architecture).

    Args:
        cbr: channel bandwidth ratio; sets ``C = cbr·6·4^i`` (must be a positive integer).
            May be ``None`` when ``latent_channels`` is given.
        config: ``"small"``, ``"cifar"``, ``"base"``, ``"large"`` or a :class:`SwinJSCCConfig`.
        latent_channels: ``C`` directly; if ``cbr`` is also given it must match.
        snr_adaptive: add the SNR gates (then ``snr_db`` is required in encode/decode).
        window_size, embed_dims, depths, num_heads, mlp_ratio: override the config's values.
        patch_norm: LayerNorm after the patch embedding.
        snr_hidden: hidden width of the SNR-gate MLPs.

    ``encode(img [B, 3, H, W], snr_db)`` → real latent ``[B, C, H/2^i, W/2^i]`` (not power
    normalized); ``decode(z_hat, snr_db)`` → image ``[B, 3, H, W]`` in [0, 1]. ``snr_db``: float
    or ``[B]`` tensor (dB).
    """

    def __init__(
        self,
        cbr: float | None = 1 / 12,
        config: str | SwinJSCCConfig = "small",
        latent_channels: int | None = None,
        snr_adaptive: bool = True,
        window_size: int | None = None,
        embed_dims: tuple[int, ...] | None = None,
        depths: tuple[int, ...] | None = None,
        num_heads: tuple[int, ...] | None = None,
        mlp_ratio: float | None = None,
        patch_norm: bool = True,
        snr_hidden: int = 64,
    ) -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in SWIN_CONFIGS:
                raise ValueError(f"config must be one of {sorted(SWIN_CONFIGS)}, got {config!r}")
            cfg = SWIN_CONFIGS[config]
        elif isinstance(config, SwinJSCCConfig):
            cfg = config
        else:
            raise TypeError(f"config must be a name or a SwinJSCCConfig, got {type(config)}")
        overrides = {
            "window_size": window_size,
            "embed_dims": None if embed_dims is None else tuple(int(d) for d in embed_dims),
            "depths": None if depths is None else tuple(int(d) for d in depths),
            "num_heads": None if num_heads is None else tuple(int(d) for d in num_heads),
            "mlp_ratio": mlp_ratio,
        }
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        cfg.validate()
        self.config = cfg
        i = cfg.num_downsamplings
        if latent_channels is None:
            if cbr is None:
                raise ValueError("give cbr or latent_channels")
            c = _channels_for_cbr(cbr, i)
        else:
            if isinstance(latent_channels, bool) or int(latent_channels) != latent_channels \
                    or latent_channels < 1:
                raise ValueError(f"latent_channels must be a positive int, got {latent_channels}")
            c = int(latent_channels)
            if cbr is not None and _channels_for_cbr(cbr, i) != c:
                raise ValueError(
                    f"cbr={cbr!r} gives C={cbr * 6 * 4**i:g}, but latent_channels={c}; give one "
                    f"of them (or cbr={c}/{6 * 4**i})"
                )
        self.latent_channels = c
        self.num_downsamplings = i
        self.snr_adaptive = bool(snr_adaptive)
        dims, m = cfg.embed_dims, cfg.window_size
        n = len(dims)

        # Encoder.
        self.patch_embed = nn.Conv2d(3, dims[0], kernel_size=2, stride=2)
        self.embed_norm = nn.LayerNorm(dims[0]) if patch_norm else nn.Identity()
        self.enc_merge = nn.ModuleList(PatchMerging(dims[k - 1], dims[k]) for k in range(1, n))
        self.enc_stages = nn.ModuleList(
            _Stage(dims[k], cfg.depths[k], cfg.num_heads[k], m, cfg.mlp_ratio) for k in range(n)
        )
        self.enc_norm = nn.LayerNorm(dims[-1])
        self.enc_head = nn.Linear(dims[-1], c)

        # Decoder (stage k of the decoder list works at the resolution of encoder stage k).
        self.dec_in = nn.Linear(c, dims[-1])
        self.dec_stages = nn.ModuleList(
            _Stage(dims[k], cfg.depths[k], cfg.num_heads[k], m, cfg.mlp_ratio) for k in range(n)
        )
        self.dec_split = nn.ModuleList(
            PatchSplit(dims[k], dims[k - 1] if k else 3) for k in range(n)
        )

        self.apply(_init_weights)
        if self.snr_adaptive:  # created after the init so they keep PyTorch's default init
            self.enc_gates = nn.ModuleList(SNRGate(d, snr_hidden) for d in dims)
            self.dec_gates = nn.ModuleList(SNRGate(d, snr_hidden) for d in dims)

    # -- geometry ------------------------------------------------------------------------------

    def check_image_size(self, h: int, w: int) -> None:
        """Raise ``ValueError`` unless ``(h, w)`` pixels fit the stage/window geometry."""
        f = 2**self.num_downsamplings
        m = self.config.window_size
        hint = (f"H and W must be multiples of 2^i = {f}, and every stage resolution a multiple "
                f"of its window ({m}, clipped to the resolution when smaller); multiples of "
                f"{f * m} always work")
        if h < 1 or w < 1 or h % f or w % f:
            raise ValueError(f"image size {h}x{w} does not fit: {hint}")
        for k in range(self.num_downsamplings):
            sh, sw = h // 2 ** (k + 1), w // 2 ** (k + 1)
            ws, _ = stage_window(sh, sw, m)
            if sh % ws or sw % ws:
                raise ValueError(
                    f"image size {h}x{w} does not fit: stage {k} has {sh}x{sw} tokens, not a "
                    f"multiple of its window {ws}; {hint}"
                )

    def latent_shape(self, image_shape: tuple[int, int]) -> tuple[int, ...]:
        h, w = (int(s) for s in image_shape)
        self.check_image_size(h, w)
        f = 2**self.num_downsamplings
        return (self.latent_channels, h // f, w // f)

    # -- SNR -----------------------------------------------------------------------------------

    def _snr(self, snr_db: float | torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor | None:
        if not self.snr_adaptive:
            return None
        if snr_db is None:
            raise ValueError("this SwinJSCC is SNR-adaptive: pass snr_db (float or [B] tensor)")
        b = ref.shape[0]
        t = torch.as_tensor(snr_db, dtype=ref.dtype, device=ref.device)
        if t.dim() == 0:
            t = t.expand(b)
        elif t.numel() == b:
            t = t.reshape(b)
        else:
            raise ValueError(f"snr_db must be a scalar or have {b} entries, got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("snr_db must be finite")
        return t

    # -- model ---------------------------------------------------------------------------------

    def encode(self, img: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        img = as_float_images(img)
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be [B, 3, H, W], got {tuple(img.shape)}")
        h, w = img.shape[-2:]
        self.check_image_size(h, w)
        snr = self._snr(snr_db, img)
        x = self.patch_embed(img)  # [B, d0, H/2, W/2]
        b, _, h, w = x.shape
        x = self.embed_norm(x.flatten(2).transpose(1, 2))
        n = len(self.enc_stages)
        for k, stage in enumerate(self.enc_stages):
            if k:
                x = self.enc_merge[k - 1](x, h, w)
                h, w = h // 2, w // 2
            x = stage(x, h, w)
            if k == n - 1:
                x = self.enc_norm(x)
            if snr is not None:
                x = self.enc_gates[k](x, snr)
        z = self.enc_head(x)  # [B, h·w, C]
        return z.transpose(1, 2).reshape(b, self.latent_channels, h, w)

    def decode(self, z_hat: torch.Tensor,
               snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        if z_hat.dim() != 4 or z_hat.shape[1] != self.latent_channels:
            raise ValueError(
                f"z_hat must be [B, {self.latent_channels}, h, w], got {tuple(z_hat.shape)}"
            )
        b, _, h, w = z_hat.shape
        f = 2**self.num_downsamplings
        self.check_image_size(h * f, w * f)
        snr = self._snr(snr_db, z_hat)
        x = self.dec_in(z_hat.flatten(2).transpose(1, 2))
        for k in reversed(range(len(self.dec_stages))):
            if snr is not None:
                x = self.dec_gates[k](x, snr)
            x = self.dec_stages[k](x, h, w)
            x = self.dec_split[k](x, h, w)
            h, w = 2 * h, 2 * w
        img = x.transpose(1, 2).reshape(b, 3, h, w)
        return torch.sigmoid(img)


def _init_weights(mod: nn.Module) -> None:
    if isinstance(mod, nn.Linear):
        nn.init.trunc_normal_(mod.weight, std=0.02)
        if mod.bias is not None:
            nn.init.zeros_(mod.bias)
    elif isinstance(mod, nn.LayerNorm):
        nn.init.ones_(mod.weight)
        nn.init.zeros_(mod.bias)
