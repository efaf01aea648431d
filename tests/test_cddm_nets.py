"""CDDM noise predictors: published size (reference check 12), height concat and fold,
conditioning on t and |h|, determinism, input validation, and that the vector net learns."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cddm import CDDMSchedule, MLPDenoiser, UNet, build_net, net_from_config

C, H, W = 4, 4, 8


def _inputs(b: int = 2, shape: tuple[int, ...] = (C, H, W), T: int = 1000, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((b, *shape), generator=g)
    t = torch.randint(0, T, (b,), generator=g)
    h = torch.rand((b, *shape), generator=g) * 2
    return x, t, h


def _rel_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm() / a.norm()).detach())


def _adam_steps(net: torch.nn.Module, shape: tuple[int, ...], steps: int) -> None:
    """A few optimizer steps towards a target that depends on x, t and |h|."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for k in range(steps):
        x, t, h = _inputs(8, shape, seed=100 + k)
        gain = torch.cos(torch.pi * t / 1000).reshape((-1,) + (1,) * (x.dim() - 1))
        loss = (net(x, t, h) - (gain * x + h - 1)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


# --------------------------------------------------------------------------- published size
@pytest.mark.parametrize(("c", "millions"), [(36, 523.0), (16, 103.0), (12, 58.0), (8, 26.0)])
def test_paper_parameter_count(c: int, millions: float) -> None:
    with torch.device("meta"):
        net = UNet.paper(c)
    assert net.config["ch"] == 16 * c
    n = net.num_parameters()
    assert n == pytest.approx(millions * 1e6, rel=0.01), f"C={c}: {n / 1e6:.2f} M parameters"


def test_paper_forward_shapes_on_meta() -> None:
    """DIV2K layout of the published net: latent [B, 36, 16, 16] → input [B, 36, 32, 16]."""
    with torch.device("meta"):
        net = UNet.paper(36)
        x = torch.empty(2, 36, 16, 16)
        seen: dict[str, torch.Size] = {}
        net.head.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0].shape))
        out = net(x, torch.zeros(2, dtype=torch.long), torch.ones_like(x))
    assert seen["in"] == (2, 36, 32, 16)
    assert out.shape == x.shape


def test_small_config_size() -> None:
    for c in (4, 16, 36):
        n = UNet.small(c).num_parameters()
        assert 0.3e6 < n < 1.5e6, n
    assert 0.1e6 < MLPDenoiser(16).num_parameters() < 0.5e6


# --------------------------------------------------------------------------- concat and fold
def test_height_concat_and_fold() -> None:
    torch.manual_seed(0)
    net = UNet.small(C, init_gain=1.0).eval()
    x, t, h = _inputs()
    seen: dict[str, torch.Tensor] = {}
    net.head.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
    net.tail.register_forward_hook(lambda m, a, o: seen.__setitem__("out", o))
    out = net(x, t, h)
    assert seen["in"].shape == (2, C, 2 * H, W)
    assert torch.equal(seen["in"][:, :, :H], x) and torch.equal(seen["in"][:, :, H:], h)
    assert seen["out"].shape == (2, C, 2 * H, W)
    assert out.shape == x.shape
    assert torch.equal(out, seen["out"][:, :, :H] + seen["out"][:, :, H:])
    # the two halves carry different values: the fold really adds two things
    assert _rel_change(seen["out"][:, :, :H], seen["out"][:, :, H:]) > 0.1


def test_channel_concat() -> None:
    torch.manual_seed(0)
    net = UNet.small(C, h_concat="channel").eval()
    assert net.head.in_channels == 2 * C and net.tail[2].out_channels == C
    x, t, h = _inputs()
    seen: dict[str, torch.Tensor] = {}
    net.head.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
    assert net(x, t, h).shape == x.shape
    assert torch.equal(seen["in"], torch.cat([x, h], dim=1))


def test_near_identity_init() -> None:
    torch.manual_seed(0)
    x, t, h = _inputs()
    out = UNet.small(C).eval()(x, t, h)
    assert out.abs().max() < 1e-3
    xv, tv, hv = _inputs(shape=(16,))
    assert MLPDenoiser(16).eval()(xv, tv, hv).abs().max() < 1e-3


# --------------------------------------------------------------------------- conditioning
def _sensitivities(net: torch.nn.Module, shape: tuple[int, ...]) -> tuple[float, float]:
    """Relative output change when only t, or only |h|, is changed."""
    x, t, h = _inputs(4, shape, seed=1)
    with torch.no_grad():
        base = net(x, t, h)
        d_t = _rel_change(base, net(x, (t + 137) % 1000, h))
        d_h = _rel_change(base, net(x, t, torch.rand_like(h) * 2))
    return d_t, d_h


@pytest.mark.parametrize("init", ["trained", "unit-gain"])
@pytest.mark.parametrize("kind", ["unet-height", "unet-channel", "mlp"])
def test_output_depends_on_t_and_h(kind: str, init: str) -> None:
    """Near-identity nets after 20 Adam steps, or nets built with xavier gain 1 everywhere."""
    torch.manual_seed(0)
    gain = 1.0 if init == "unit-gain" else 1e-5
    if kind == "mlp":
        shape: tuple[int, ...] = (16,)
        net: torch.nn.Module = MLPDenoiser(16, init_gain=gain)
    else:
        shape = (C, H, W)
        net = UNet.small(C, h_concat=kind.split("-")[1], init_gain=gain)
    if init == "trained":
        _adam_steps(net, shape, steps=20)
    net.eval()
    d_t, d_h = _sensitivities(net, shape)
    assert d_t > 0.02 and d_h > 0.02, (d_t, d_h)

    # the measure detects a net that ignores t: cut every path from the step embedding
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "temb_proj"):
                m.temb_proj[1].weight.zero_()
                m.temb_proj[1].bias.zero_()
    d_t0, d_h0 = _sensitivities(net, shape)
    assert d_t0 == 0.0 and d_h0 > 0.02


def test_mlp_ignoring_h_is_detected() -> None:
    torch.manual_seed(0)
    net = MLPDenoiser(16)
    _adam_steps(net, (16,), steps=20)
    with torch.no_grad():
        net.head.weight[:, 16:].zero_()  # the |h| half of the input layer
    assert _sensitivities(net.eval(), (16,))[1] == 0.0


# --------------------------------------------------------------------------- determinism
def test_eval_mode_is_bitwise_deterministic() -> None:
    torch.manual_seed(0)
    net = UNet.small(C, dropout=0.1, init_gain=1.0)
    x, t, h = _inputs()
    net.train()
    assert not torch.equal(net(x, t, h), net(x, t, h))  # dropout is active in training
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x, t, h), net(x, t, h))
    mlp = MLPDenoiser(16, dropout=0.1).eval()
    xv, tv, hv = _inputs(shape=(16,))
    assert torch.equal(mlp(xv, tv, hv), mlp(xv, tv, hv))


def test_scalar_t_is_broadcast() -> None:
    torch.manual_seed(0)
    net = UNet.small(C, init_gain=1.0).eval()
    x, _, h = _inputs()
    full = torch.full((2,), 5, dtype=torch.long)
    assert torch.equal(net(x, 5, h), net(x, full, h))


# --------------------------------------------------------------------------- validation
def test_unet_input_errors() -> None:
    net = UNet.small(C, T=100)
    x, t, h = _inputs(T=100)
    with pytest.raises(ValueError, match=r"height after the height concatenation.*multiple of 4"
                                         r".*got 6"):
        net(x[:, :, :3], t, h[:, :, :3])
    with pytest.raises(ValueError, match=r"width must be a positive multiple of 4.*got 6"):
        net(x[..., :6], t, h[..., :6])
    with pytest.raises(ValueError, match=r"h_abs must have the shape of x_t \(2, 4, 4, 8\)"):
        net(x, t, h[:, :, :2])
    with pytest.raises(ValueError, match=r"t must lie in \[0, 100\).*got 100"):
        net(x, torch.tensor([0, 100]), h)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 100\).*got -1"):
        net(x, torch.tensor([-1, 3]), h)
    with pytest.raises(ValueError, match="integer step indices"):
        net(x, t.float(), h)
    with pytest.raises(ValueError, match=r"t must have shape \[2\]"):
        net(x, t[:1], h)
    with pytest.raises(ValueError, match=r"x_t must have shape \[B, 4, H, W\]"):
        net(x[:, :3], t, h[:, :3])
    with pytest.raises(ValueError, match="complex"):
        net(x, t, torch.complex(h, h))
    # channel mode: H itself must be divisible by 4
    with pytest.raises(ValueError, match=r"latent height must be a positive multiple of 4.*got 2"):
        UNet.small(C, h_concat="channel")(x[:, :, :2], t, h[:, :, :2])


def test_latent_shape_records_the_training_size_and_any_size_runs() -> None:
    """Fully convolutional: a latent larger than the training one runs; the channels must
    match."""
    net = UNet.small(C, latent_shape=(C, H, W))
    assert net.latent_shape == (C, H, W)
    x, t, h = _inputs(shape=(C, 8, 8))
    out = net(x, t, h)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"shape \[B, 4, H, W\]"):
        net(x[:, :3], t, h[:, :3])
    with pytest.raises(ValueError, match="latent_shape must be"):
        UNet.small(C, latent_shape=(C + 1, H, W))
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet.small(C, latent_shape=(C, 3, 8))
    assert UNet.small(C).latent_shape is None and MLPDenoiser(8).latent_shape is None


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="h_concat"):
        UNet.small(C, h_concat="width")
    with pytest.raises(ValueError, match="attn_levels"):
        UNet.small(C, attn_levels=(3,))
    with pytest.raises(ValueError, match="ch must be even"):
        UNet(C, ch=33)
    with pytest.raises(ValueError, match="dropout"):
        MLPDenoiser(8, dropout=1.0)


def test_mlp_input_errors() -> None:
    net = MLPDenoiser(16, T=50)
    x, t, h = _inputs(shape=(16,), T=50)
    with pytest.raises(ValueError, match=r"x_t must have shape \[B, 16\]"):
        net(x[:, :8], t, h[:, :8])
    with pytest.raises(ValueError, match="h_abs must have the shape"):
        net(x, t, h[:1])
    with pytest.raises(ValueError, match=r"t must lie in \[0, 50\).*got 50"):
        net(x, torch.tensor([50, 0]), h)


def test_group_norm_groups_divide_odd_widths() -> None:
    net = UNet(3, ch=36, num_res_blocks=1)  # widths 36, 72, 108, 144: 4, 8, 4, 16 groups
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert all(m.num_groups == math.gcd(32, m.num_channels) for m in norms)
    assert {m.num_groups for m in norms} == {4, 8, 16}
    x, t, h = _inputs(shape=(3, 4, 4))
    assert net(x, t, h).shape == x.shape


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", ["unet", "unet-small", "mlp"])
def test_config_rebuilds_the_net(name: str) -> None:
    shape = (16,) if name == "mlp" else (C, H, W)
    kw = {"ch": 32, "num_res_blocks": 1} if name == "unet" else {}
    torch.manual_seed(0)
    net = build_net(name, shape, T=200, **kw)
    assert net.latent_shape == shape and net.T == 200
    cfg = json.loads(json.dumps(net.config))  # plain data, survives a checkpoint's hparams
    torch.manual_seed(0)
    again = net_from_config(cfg)
    assert again.config == net.config and again.latent_shape == shape
    sd, sd2 = net.state_dict(), again.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


def test_build_net_errors_and_paper() -> None:
    with torch.device("meta"):
        assert build_net("unet-paper", (36, 16, 16)).config["ch"] == 576
    with pytest.raises(ValueError, match="needs latents"):
        build_net("unet-small", (16,))
    with pytest.raises(ValueError, match="needs vector payloads"):
        build_net("mlp", (4, 4, 4))
    with pytest.raises(ValueError, match="unknown net"):
        build_net("transformer", (16,))
    with pytest.raises(ValueError, match="unknown net 'gan'"):
        net_from_config({"type": "gan"})
    with pytest.raises(ValueError, match="config\\['type'\\]"):
        net_from_config({"channels": 4})
    with pytest.raises(ValueError, match="disagrees"):
        build_net("unet", (4, 8, 8), channels=8)


# --------------------------------------------------------------------------- learning
def test_mlp_learns_to_predict_noise() -> None:
    """Payloads on a 2-D subspace of R^16: after 300 Adam steps the held-out ε-MSE is far below
    1, the value of ε_hat = 0 (and of the untrained, near-zero net)."""
    torch.manual_seed(0)
    D, k = 16, 2
    sched = CDDMSchedule(T=1000)
    basis = torch.linalg.qr(torch.randn(D, k))[0] * (D / k) ** 0.5  # unit power per element

    def batch(n: int) -> tuple[torch.Tensor, ...]:
        x0 = torch.randn(n, k) @ basis.T
        t = torch.randint(0, sched.T, (n,))
        eps = torch.randn(n, D)
        return sched.q_sample(x0, eps, t).float(), t, eps

    net = MLPDenoiser(D)
    x_val, t_val, eps_val = batch(4096)
    ones = torch.ones_like(x_val)

    def val_mse() -> float:
        with torch.no_grad():
            return float((net.eval()(x_val, t_val, ones) - eps_val).square().mean())

    before = val_mse()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(300):
        x_t, t, eps = batch(128)
        loss = (net(x_t, t, torch.ones_like(x_t)) - eps).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = val_mse()
    assert before == pytest.approx(1.0, abs=0.05)
    assert after < 0.25, f"ε-MSE {before:.3f} → {after:.3f}"


def test_jscc_latents_feed_the_published_unet() -> None:
    """Reference note §8 checks 5 and 13: the CDDM JSCC latent is [36, 16, 16] at 256x256
    (CBR 3/128) and [C, 8, 8] for CIFAR; the published U-Net accepts the former."""
    from jscc.models import SwinJSCC

    torch.manual_seed(0)
    div2k = SwinJSCC(cbr=36 / 1536, config="large", snr_adaptive=False)
    assert div2k.latent_shape((256, 256)) == (36, 16, 16)
    assert div2k.cbr((256, 256)) == pytest.approx(3 / 128)
    cifar = SwinJSCC(cbr=1 / 6, config="cifar", snr_adaptive=False)
    _, h, w = cifar.latent_shape((32, 32))
    assert (h, w) == (8, 8) and cifar.cbr((32, 32)) == pytest.approx(1 / 6)
    with torch.device("meta"):
        net = UNet.paper(36, latent_shape=(36, 16, 16))
    assert net.latent_shape == (36, 16, 16)
