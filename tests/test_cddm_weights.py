"""CDDM's W_s / W_n: closed forms, and the equivalent real model of a real AnalogLink."""

from __future__ import annotations

import pytest
import torch

import phy
from cddm.weights import equalizer_weights, latent_weights


def test_closed_forms() -> None:
    h = torch.tensor([0.0 + 0.0j, 1.0 + 0.0j, 0.6 - 0.8j, 2.0 + 0.0j])
    no = 0.5
    w_s, w_n = equalizer_weights(h, no)
    g = h.abs() ** 2
    assert torch.allclose(w_s, g / (g + no), atol=1e-7)
    assert torch.allclose(w_n, h.abs() / (g + no), atol=1e-7)
    with pytest.raises(ValueError, match="h must be a complex"):
        equalizer_weights(torch.ones(3), no)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_equivalent_real_model_of_the_analog_link(snr_db: float) -> None:
    """z_hat / scale = W_s x + W_n n with n ~ N(0, no/2): residual power matches (2 %)."""
    z = torch.randn(64, 4096)
    r = phy.AnalogLink(phy.RayleighFading("symbol")).send(z, snr_db)
    w_s, w_n = latent_weights(r, z)
    x = z / r.scale[:, None]
    resid = r.z_hat / r.scale[:, None] - w_s * x
    no = float(r.no)
    predicted = float((w_n.square() * no / 2).mean())
    assert abs(float(resid.square().mean()) - predicted) / predicted < 0.02
    # identity weights as published for AWGN
    w1, w2 = latent_weights(r, z, awgn_identity=True)
    assert torch.equal(w1, torch.ones_like(z)) and torch.equal(w2, torch.ones_like(z))
