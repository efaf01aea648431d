"""CDDM noise predictors ``eps_theta(x_t, t, |h|)``.

Two networks share one call, ``net(x_t, t, h_abs) -> eps_hat`` (the shape of ``x_t``):

* :class:`UNet` for latents ``[B, C, H, W]``: the classic DDPM CIFAR U-Net used by the published
  CDDM (Wu et al., IEEE TWC 2024; reference note §1.5 and §3.1). ``|h|`` is concatenated with
  ``x_t`` along the height axis, the network sees ``[B, C, 2H, W]`` and its two output height
  halves are summed back into ``[B, C, H, W]``. :meth:`UNet.paper` is the published size
  (``ch = 16 C``, about 523 M parameters at ``C = 36``), :meth:`UNet.small` a CPU-sized one.
* :class:`MLPDenoiser` for vector payloads ``[B, D]`` (e.g. MoE hidden states).

Arguments:

* ``x_t``: the noisy payload at diffusion index ``t`` (power-normalized units, ~unit variance).
* ``t``: LongTensor ``[B]`` of 0-based step indices in ``[0, T)`` (index ``i`` is paper step
  ``i + 1``, as in :class:`cddm.schedule.CDDMSchedule`).
* ``h_abs``: the CSI amplitude ``|h|`` laid out like ``x_t`` (each complex symbol's ``|h|``
  repeated on its real and imaginary elements); all ones for AWGN.

Both expose ``latent_shape`` (the payload shape without batch they were built for, or None for
any) and ``config``: a plain dict from which :func:`net_from_config` rebuilds the network, so a
checkpoint's network can be matched against a latent shape before its weights are loaded.

The layers are written here on ``torch.nn`` building blocks: no diffusion library offers a U-Net
conditioned on a height-concatenated CSI map with a folded output, and the layer layout has to
follow the published network to reproduce its parameter count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from phy import Registry

from .checks import check_h_abs, check_steps

__all__ = ["NETS", "MLPDenoiser", "UNet", "build_net", "net_from_config"]

HConcat = Literal["height", "channel"]


# --------------------------------------------------------------------------- shared pieces
def sinusoidal_table(T: int, dim: int) -> torch.Tensor:
    """Fixed step embedding ``[T, dim]``: ``sin(i w_k)`` in the first half, ``cos(i w_k)`` in
    the second, ``w_k = 10000^(-2k/dim)`` for ``k = 0 … dim/2 - 1`` (``dim`` even)."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the step embedding width must be an even int >= 2, got {dim}")
    freqs = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freqs[None, :]
    return torch.cat([ang.sin(), ang.cos()], dim=1).float()


class TimeEmbedding(nn.Module):
    """Step index ``[B]`` → ``[B, 4 dim]``: sinusoidal table row → Linear(dim, 4 dim) → Swish →
    Linear(4 dim, 4 dim). The table is a non-persistent buffer (recomputed, never stored)."""

    def __init__(self, T: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(T, dim), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table[t])


def norm_groups(width: int, max_groups: int = 32) -> int:
    """Groups of a GroupNorm over ``width`` channels: ``gcd(max_groups, width)``.

    That is ``max_groups`` (32, as published) whenever it divides ``width`` (every published
    configuration: all widths are multiples of ``ch = 16 C``), otherwise the largest divisor of
    ``max_groups`` that also divides ``width``, so any width works.
    """
    return math.gcd(max_groups, width)


def _xavier(module: nn.Conv2d | nn.Linear, gain: float = 1.0) -> None:
    nn.init.xavier_uniform_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)



def _num_parameters(module: nn.Module, trainable_only: bool) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- U-Net layers
class AttnBlock(nn.Module):
    """Single-head self-attention over the ``H W`` positions of ``[B, c, H, W]``: GroupNorm,
    1×1 q/k/v convs, softmax with scale ``1/sqrt(c)``, 1×1 output projection (xavier gain
    ``init_gain``, near identity at init) and a residual connection."""

    def __init__(self, c: int, max_groups: int = 32, init_gain: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups(c, max_groups), c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        for m in (self.q, self.k, self.v):
            _xavier(m)
        _xavier(self.proj, init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))  # [B,HW,c]
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(c)) v
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class ResBlock(nn.Module):
    """GroupNorm → Swish → conv3×3; add ``Linear(Swish(temb))``; GroupNorm → Swish → Dropout →
    conv3×3 (xavier gain ``init_gain``); 1×1 shortcut when the width changes; then optional
    self-attention. ``[B, c_in, H, W]``, ``temb [B, tdim]`` → ``[B, c_out, H, W]``."""

    def __init__(self, c_in: int, c_out: int, tdim: int, dropout: float, attn: bool,
                 max_groups: int = 32, init_gain: float = 1e-5) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.GroupNorm(norm_groups(c_in, max_groups), c_in), nn.SiLU(),
                                    nn.Conv2d(c_in, c_out, 3, padding=1))
        self.temb_proj = nn.Sequential(nn.SiLU(), nn.Linear(tdim, c_out))
        self.block2 = nn.Sequential(nn.GroupNorm(norm_groups(c_out, max_groups), c_out),
                                    nn.SiLU(), nn.Dropout(dropout),
                                    nn.Conv2d(c_out, c_out, 3, padding=1))
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attn = AttnBlock(c_out, max_groups, init_gain) if attn else nn.Identity()
        _xavier(self.block1[2])
        _xavier(self.temb_proj[1])
        _xavier(self.block2[3], init_gain)
        if isinstance(self.shortcut, nn.Conv2d):
            _xavier(self.shortcut)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.temb_proj(temb)[:, :, None, None]
        h = self.block2(h)
        return self.attn(h + self.shortcut(x))


class Downsample(nn.Module):
    """Stride-2 conv3×3: ``[B, c, H, W]`` → ``[B, c, H/2, W/2]``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)
        _xavier(self.conv)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest ×2 then conv3×3: ``[B, c, H, W]`` → ``[B, c, 2H, 2W]``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        _xavier(self.conv)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """CDDM ε-predictor for latents ``[B, C, H, W]`` (the DDPM CIFAR U-Net, note §3.1).

    Layout: head conv3×3 (``C`` → ``ch``); per level ``i`` with width ``ch·ch_mult[i]``,
    ``num_res_blocks`` ResBlocks (self-attention after each at the levels in ``attn_levels``)
    and a stride-2 downsample except at the last level; middle: ResBlock with attention,
    ResBlock; up path: per level in reverse ``num_res_blocks + 1`` ResBlocks fed the matching
    skip tensors, nearest ×2 + conv upsample except at level 0; tail GroupNorm → Swish →
    conv3×3 (``ch`` → ``C``). Time embedding: sinusoidal ``[T, ch]`` → Linear(ch, 4ch) → Swish →
    Linear(4ch, 4ch), added into every ResBlock. GroupNorms use ``gcd(norm_max_groups, width)``
    groups (see :func:`norm_groups`). Initialization is xavier-uniform with zero biases; the
    second conv of every ResBlock, the attention projection and the output conv use gain
    ``init_gain`` so each block starts near identity and the output near zero.

    Args:
        channels: latent channels ``C``.
        T: diffusion steps (``t`` must lie in ``[0, T)``).
        ch: base width (published: ``16 C``; default ``16 C``).
        ch_mult: width multipliers per resolution level (``len - 1`` stride-2 downsamples).
        num_res_blocks: ResBlocks per level on the way down (``+ 1`` on the way up).
        attn_levels: level indices with self-attention.
        dropout: dropout probability inside the ResBlocks.
        h_concat: ``"height"`` (published): ``[x_t; |h|]`` along height → ``[B, C, 2H, W]``, output
            folded by summing the two height halves; ``"channel"``: along channels → ``2C`` input
            channels, ``C`` output channels.
        latent_shape: ``(C, H, W)`` the network was trained for, or None. ``C`` is checked on
            every call; the spatial size may differ (any size the down-sampling allows).
        norm_max_groups: most GroupNorm groups (32 as published).
        init_gain: xavier gain of the near-identity layers (published: 1e-5).

    The spatial input size (after the height concatenation) must be divisible by
    ``2 ** (len(ch_mult) - 1)``: with the published ``(1, 2, 2)``, latents ``[B, C, H, W]`` need
    ``H`` even and ``W`` a multiple of 4 in ``"height"`` mode.
    """

    def __init__(self, channels: int, T: int = 1000, ch: int | None = None,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 2,
                 attn_levels: Sequence[int] = (1,), dropout: float = 0.1,
                 h_concat: HConcat = "height", latent_shape: Sequence[int] | None = None,
                 norm_max_groups: int = 32, init_gain: float = 1e-5) -> None:
        super().__init__()
        ch = 16 * channels if ch is None else ch
        ch_mult = tuple(int(m) for m in ch_mult)
        attn_levels = tuple(int(i) for i in attn_levels)
        for name, v in (("channels", channels), ("T", T), ("ch", ch),
                        ("num_res_blocks", num_res_blocks), ("norm_max_groups", norm_max_groups)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if ch % 2:
            raise ValueError(f"ch must be even (sinusoidal step embedding), got {ch}")
        if not ch_mult or min(ch_mult) < 1:
            raise ValueError(f"ch_mult must be a non-empty sequence of ints >= 1, got {ch_mult}")
        if any(not 0 <= i < len(ch_mult) for i in attn_levels):
            raise ValueError(f"attn_levels must lie in [0, {len(ch_mult)}), got {attn_levels}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if h_concat not in ("height", "channel"):
            raise ValueError(f"h_concat must be 'height' or 'channel', got {h_concat!r}")
        self.channels = channels
        self.T = T
        self.h_concat: HConcat = h_concat
        self.factor = 2 ** (len(ch_mult) - 1)
        self.latent_shape: tuple[int, ...] | None = None
        if latent_shape is not None:
            shape = tuple(int(s) for s in latent_shape)
            if len(shape) != 3 or shape[0] != channels:
                raise ValueError(f"latent_shape must be (C={channels}, H, W), got {shape}")
            self._check_spatial(shape[1], shape[2])
            self.latent_shape = shape
        self.config: dict[str, Any] = dict(
            type="unet", channels=channels, T=T, ch=ch, ch_mult=list(ch_mult),
            num_res_blocks=num_res_blocks, attn_levels=list(attn_levels), dropout=float(dropout),
            h_concat=h_concat, latent_shape=None if self.latent_shape is None
            else list(self.latent_shape), norm_max_groups=norm_max_groups,
            init_gain=float(init_gain))

        tdim = 4 * ch
        g = norm_max_groups
        self.time_embedding = TimeEmbedding(T, ch)
        c_in = 2 * channels if h_concat == "channel" else channels
        self.head = nn.Conv2d(c_in, ch, 3, padding=1)
        _xavier(self.head)
        self.down = nn.ModuleList()
        skips = [ch]
        now = ch
        for i, mult in enumerate(ch_mult):
            out = ch * mult
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(now, out, tdim, dropout, i in attn_levels, g,
                                          init_gain))
                now = out
                skips.append(now)
            if i != len(ch_mult) - 1:
                self.down.append(Downsample(now))
                skips.append(now)
        self.middle = nn.ModuleList([ResBlock(now, now, tdim, dropout, True, g, init_gain),
                                     ResBlock(now, now, tdim, dropout, False, g, init_gain)])
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            out = ch * mult
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(skips.pop() + now, out, tdim, dropout, i in attn_levels,
                                        g, init_gain))
                now = out
            if i != 0:
                self.up.append(Upsample(now))
        self.tail = nn.Sequential(nn.GroupNorm(norm_groups(now, g), now), nn.SiLU(),
                                  nn.Conv2d(now, channels, 3, padding=1))
        _xavier(self.tail[2], init_gain)

    # ------------------------------------------------------------------ configurations
    @classmethod
    def paper(cls, C: int = 36, **kwargs: Any) -> UNet:
        """The published size: ``ch = 16 C``, ``ch_mult (1, 2, 2)``, 2 ResBlocks per level,
        attention at level 1 and in the middle, dropout 0.1 (about 523 M parameters at
        ``C = 36``, 103 M at 16, 26 M at 8). ``kwargs`` override any of these."""
        kw: dict[str, Any] = dict(ch=16 * C, ch_mult=(1, 2, 2), num_res_blocks=2,
                                  attn_levels=(1,), dropout=0.1)
        kw.update(kwargs)
        return cls(C, **kw)

    @classmethod
    def small(cls, C: int, **kwargs: Any) -> UNet:
        """A CPU-sized network of the same layout for tests and quick runs: ``ch = 32``,
        ``ch_mult (1, 2, 2)``, one ResBlock per level, attention at level 1 and in the middle,
        GroupNorm of at most 8 groups, no dropout (about 1.1 M parameters for ``C <= 36``).
        ``kwargs`` override any of these."""
        kw: dict[str, Any] = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(1,),
                                  dropout=0.0, norm_max_groups=8)
        kw.update(kwargs)
        return cls(C, **kw)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters; works on ``meta``-device modules too."""
        return _num_parameters(self, trainable_only)

    # ------------------------------------------------------------------ forward
    def _check_spatial(self, H: int, W: int) -> None:
        rows = 2 * H if self.h_concat == "height" else H
        where = " after the height concatenation (2H)" if self.h_concat == "height" else ""
        for name, v in ((f"height{where}", rows), ("width", W)):
            if v < self.factor or v % self.factor:
                raise ValueError(f"latent {name} must be a positive multiple of {self.factor} "
                                 f"(2**(len(ch_mult)-1)), got {v}")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, h_abs: torch.Tensor) -> torch.Tensor:
        """``x_t [B, C, H, W]``, ``t [B]`` (0-based indices in ``[0, T)``), ``h_abs [B, C, H, W]``
        → ``eps_hat [B, C, H, W]``."""
        if x_t.dim() != 4 or x_t.shape[1] != self.channels:
            raise ValueError(f"x_t must have shape [B, {self.channels}, H, W], got "
                             f"{tuple(x_t.shape)}")
        # Fully convolutional (and attention over any number of positions): latents of any
        # spatial size the down-sampling allows work, e.g. 256x256 images through a CDDM
        # trained on the latents of 64x64 crops; latent_shape records the training size.
        H, W = x_t.shape[2], x_t.shape[3]
        self._check_spatial(H, W)
        h_abs = check_h_abs(x_t, h_abs)
        t = check_steps(t, x_t.shape[0], self.T, x_t.device)

        x = torch.cat([x_t, h_abs], dim=2 if self.h_concat == "height" else 1)
        temb = self.time_embedding(t)
        h = self.head(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, temb)
            skips.append(h)
        for layer in self.middle:
            h = layer(h, temb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(h, temb)
        out = self.tail(h)
        if self.h_concat == "height":
            out = out[:, :, :H] + out[:, :, H:]
        return out


# --------------------------------------------------------------------------- vectors
class MLPBlock(nn.Module):
    """LayerNorm → Swish → Linear; add ``Linear(Swish(temb))``; LayerNorm → Swish → Dropout →
    Linear (xavier gain ``init_gain``); residual. ``[B, w]``, ``temb [B, tdim]`` → ``[B, w]``."""

    def __init__(self, width: int, tdim: int, dropout: float, init_gain: float) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width))
        self.temb_proj = nn.Sequential(nn.SiLU(), nn.Linear(tdim, width))
        self.block2 = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Dropout(dropout),
                                    nn.Linear(width, width))
        _xavier(self.block1[2])
        _xavier(self.temb_proj[1])
        _xavier(self.block2[3], init_gain)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return x + self.block2(self.block1(x) + self.temb_proj(temb))


class MLPDenoiser(nn.Module):
    """CDDM ε-predictor for vector payloads ``[B, D]``: a residual MLP.

    ``[x_t, |h|]`` (``[B, 2D]``) → Linear(2D, width) → ``num_blocks`` residual blocks (each
    with the step embedding added, as in the U-Net's ResBlocks) → LayerNorm → Swish →
    Linear(width, D). The step embedding is the U-Net's: sinusoidal ``[T, temb_ch]`` →
    Linear → Swish → Linear to ``4 temb_ch``. The last layer of each block and the output layer
    use xavier gain ``init_gain``, so blocks start as identities and the output near zero.

    Why an MLP and not a 1-D convolution: the coordinates of a vector payload (an MoE hidden
    state, a flattened code) have no order or locality for a convolution to exploit; what a
    denoiser can use is the correlation structure across all coordinates (payloads near a
    low-dimensional subspace or manifold), and a dense layer sees every coordinate at once. The
    per-coordinate ``|h|`` enters the first layer next to its coordinate. The cost is
    ``~3 D width`` parameters in the input and output layers; the blocks cost
    ``num_blocks (2 width² + 4 temb_ch width)``.

    Args:
        dim: payload length ``D``.
        T: diffusion steps (``t`` must lie in ``[0, T)``).
        width: hidden width.
        num_blocks: residual blocks.
        temb_ch: sinusoidal embedding width (the embedding MLP outputs ``4 temb_ch``).
        dropout: dropout inside the blocks.
        latent_shape: ``(D,)`` or None.
        init_gain: xavier gain of the near-identity layers.

    The default (``width 256``, 2 blocks, ``temb_ch 64``) has about 0.49 M parameters at
    ``D = 16``, 0.58 M at ``D = 128`` and 3.6 M at ``D = 4096``.
    """

    def __init__(self, dim: int, T: int = 1000, width: int = 256, num_blocks: int = 2,
                 temb_ch: int = 64, dropout: float = 0.0,
                 latent_shape: Sequence[int] | None = None, init_gain: float = 1e-5) -> None:
        super().__init__()
        for name, v in (("dim", dim), ("T", T), ("width", width), ("num_blocks", num_blocks),
                        ("temb_ch", temb_ch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dim = dim
        self.T = T
        self.latent_shape: tuple[int, ...] | None = None
        if latent_shape is not None:
            shape = tuple(int(s) for s in latent_shape)
            if shape != (dim,):
                raise ValueError(f"latent_shape must be (D={dim},), got {shape}")
            self.latent_shape = shape
        self.config: dict[str, Any] = dict(
            type="mlp", dim=dim, T=T, width=width, num_blocks=num_blocks, temb_ch=temb_ch,
            dropout=float(dropout), latent_shape=None if self.latent_shape is None
            else list(self.latent_shape), init_gain=float(init_gain))
        self.time_embedding = TimeEmbedding(T, temb_ch)
        self.head = nn.Linear(2 * dim, width)
        _xavier(self.head)
        self.blocks = nn.ModuleList(MLPBlock(width, 4 * temb_ch, dropout, init_gain)
                                    for _ in range(num_blocks))
        self.tail = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))
        _xavier(self.tail[2], init_gain)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return _num_parameters(self, trainable_only)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, h_abs: torch.Tensor) -> torch.Tensor:
        """``x_t [B, D]``, ``t [B]`` (0-based indices in ``[0, T)``), ``h_abs [B, D]`` →
        ``eps_hat [B, D]``."""
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape [B, {self.dim}], got {tuple(x_t.shape)}")
        h_abs = check_h_abs(x_t, h_abs)
        t = check_steps(t, x_t.shape[0], self.T, x_t.device)
        temb = self.time_embedding(t)
        h = self.head(torch.cat([x_t, h_abs], dim=1))
        for block in self.blocks:
            h = block(h, temb)
        return self.tail(h)


# --------------------------------------------------------------------------- factories
def _shape(name: str, latent_shape: Sequence[int] | None, rank: int, what: str
           ) -> tuple[int, ...] | None:
    if latent_shape is None:
        return None
    shape = tuple(int(s) for s in latent_shape)
    if len(shape) != rank:
        raise ValueError(f"net={name!r} needs {what}, got latent_shape={shape}")
    return shape


def _unet_factory(name: str, make: Callable[..., UNet]) -> Callable[..., UNet]:
    def factory(latent_shape: Sequence[int] | None = None, *, T: int = 1000,
                channels: int | None = None, **kwargs: Any) -> UNet:
        shape = _shape(name, latent_shape, 3, "latents (C, H, W)")
        if channels is None:
            if shape is None:
                raise ValueError(f"net={name!r} needs latent_shape (C, H, W) or channels")
            channels = shape[0]
        elif shape is not None and shape[0] != channels:
            raise ValueError(f"channels={channels} disagrees with latent_shape={shape}")
        return make(channels, T=T, latent_shape=shape, **kwargs)

    return factory


def _mlp_factory(latent_shape: Sequence[int] | None = None, *, T: int = 1000,
                 dim: int | None = None, **kwargs: Any) -> MLPDenoiser:
    shape = _shape("mlp", latent_shape, 1, "vector payloads (D,)")
    if dim is None:
        if shape is None:
            raise ValueError("net='mlp' needs latent_shape (D,) or dim")
        dim = shape[0]
    elif shape is not None and shape[0] != dim:
        raise ValueError(f"dim={dim} disagrees with latent_shape={shape}")
    return MLPDenoiser(dim, T=T, latent_shape=shape, **kwargs)


#: Noise predictors by name (:mod:`phy.registry`). Each factory takes the payload shape
#: ``latent_shape`` (without batch), ``T`` and the network's own keywords; the ``type`` of a
#: network's :attr:`config` is one of these names.
NETS: Registry[UNet | MLPDenoiser] = Registry("net")
NETS.register("unet", _unet_factory("unet", UNet))
NETS.register("unet-small", _unet_factory("unet-small", UNet.small))
NETS.register("unet-paper", _unet_factory("unet-paper", UNet.paper))
NETS.register("mlp", _mlp_factory)


def build_net(name: str, latent_shape: Sequence[int], T: int = 1000, **kwargs: Any
              ) -> UNet | MLPDenoiser:
    """A noise predictor for payloads of shape ``latent_shape`` (without batch).

    ``name``: ``"unet-paper"`` (:meth:`UNet.paper`), ``"unet-small"`` (:meth:`UNet.small`),
    ``"unet"`` (:class:`UNet` configured by ``kwargs``) for ``(C, H, W)``; ``"mlp"``
    (:class:`MLPDenoiser`) for ``(D,)``; or a spec with options (``"unet:ch=64"``).
    ``kwargs`` go to the constructor.

    Raises:
        ValueError: an unknown name (the message lists :data:`NETS`), a shape of the wrong
            rank, or bad options.
    """
    if latent_shape is None:
        raise ValueError("latent_shape must be the payload's shape without batch, got None")
    return NETS.build(name, latent_shape, T=T, **kwargs)


def net_from_config(config: dict[str, Any]) -> UNet | MLPDenoiser:
    """Rebuild a network (fresh weights) from its ``config`` dict (``type`` names the
    :data:`NETS` entry)."""
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if not isinstance(kind, str):
        raise ValueError(f"config['type'] must name a net {NETS.available()}, got {kind!r}")
    return NETS.build({"name": kind, **cfg})
