"""``semcom quickstart``: a short tour of semcom on the embedded defaults (about a minute on a CPU).

1. Analog link: MSE of MMSE-equalized unit-power symbols vs SNR on AWGN and per-symbol Rayleigh,
   against the closed forms N0/(1+N0) and N0·e^N0·E1(N0).
2. Digital link: BER/BLER of three MCSs (QPSK, 16QAM, 64QAM) on AWGN with 5G LDPC.
3. Link adaptation: the MCS :func:`phy.select_mcs` picks from the shipped BLER table, its rate
   over 20 MHz and the Shannon capacity.
4. JSCC: a small ADJSCC trained for 1000 steps (300 with --fast) on crops of the built-in
   photos, against JPEG2000 + 5G LDPC and JPEG2000 + ideal capacity at the same bandwidth
   (CBR 1/6).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from scipy.special import exp1

import phy
from experiments.link_curves import run_link_curves, snr_at_bler
from experiments.results import ResultsDir

__all__ = ["run_quickstart"]


def _analog_section(res: ResultsDir, snrs: list[float], num_values: int) -> list[dict]:
    rows = []
    for name, channel, theory in (
        ("awgn", phy.AWGN(), lambda n0: n0 / (1 + n0)),
        ("rayleigh", phy.RayleighFading("symbol"), lambda n0: n0 * math.exp(n0) * exp1(n0)),
    ):
        link = phy.AnalogLink(channel)
        for s in snrs:
            z = torch.randn(16, num_values // 16)
            r = link.send(z, s)
            scale2 = r.scale.square()[:, None]
            mse = float(((r.z_hat - z).square() / scale2).mean()) * 2  # per complex symbol
            rows.append({"channel": name, "snr_db": s, "mse_per_symbol": mse,
                         "mse_db": 10 * math.log10(mse),
                         "theory_db": 10 * math.log10(theory(10 ** (-s / 10))),
                         "predicted_db": 10 * math.log10(
                             float((r.noise_var / scale2).mean()) * 2)})
    res.write_csv("analog_mse.csv", rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in ("awgn", "rayleigh"):
        sel = [r for r in rows if r["channel"] == name]
        ax.plot([r["snr_db"] for r in sel], [r["mse_db"] for r in sel], "o", label=f"{name} (sim.)")
        ax.plot([r["snr_db"] for r in sel], [r["theory_db"] for r in sel], "-",
                label=f"{name} (theory)")
    ax.set_xlabel("SNR $E_s/N_0$ (dB)")
    ax.set_ylabel("MSE per complex symbol (dB)")
    ax.set_title("AnalogLink + MMSE equalizer")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    res.save_figure(fig, "analog_mse.png")
    plt.close(fig)
    return rows


def _jscc_section(res: ResultsDir, seed: int, fast: bool, progress: bool) -> ResultsDir:
    import pytorch_lightning as pl

    from experiments.eval_images import run_eval_images
    from jscc.data import ImageDataModule
    from jscc.lightning import JSCCModule

    pl.seed_everything(seed, verbose=False)
    model = JSCCModule(codec="adjscc", cbr=1 / 6, codec_kwargs={"num_filters": 32},
                       train_snr_range_db=(0.0, 20.0), val_snrs_db=(10.0,), lr=2e-3, seed=seed)
    # a fixed number of steps (not a time budget) so the result does not depend on machine load
    trainer = pl.Trainer(max_epochs=-1, max_steps=300 if fast else 1000,
                         accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=progress,
                         limit_val_batches=0, default_root_dir=res.path)
    trainer.fit(model, ImageDataModule(source="builtin", crop=32, batch_size=32,
                                       crops_per_image=2, seed=seed))
    ckpt = res.path / "adjscc_quickstart.ckpt"
    trainer.save_checkpoint(ckpt)
    res.manifest["jscc_training_steps"] = int(trainer.global_step)
    res.manifest["jscc_checkpoint"] = str(ckpt)
    return run_eval_images(checkpoint=str(ckpt), data="builtin", crop=64, channel="awgn",
                           snr_db=(0.0, 10.0, 20.0), mcs=(5, 13, 22), max_images=16, seed=seed,
                           out=res.path, progress=progress)


def _cddm_section(res: ResultsDir, seed: int, fast: bool, progress: bool) -> ResultsDir:
    """A small CDDM (stage 2) on the quickstart ADJSCC's latents, then channel MSE and PSNR."""
    import pytorch_lightning as pl

    from cddm.lightning import CDDMModule
    from experiments.eval_cddm import run_eval_cddm
    from jscc.data import ImageDataModule

    pl.seed_everything(seed, verbose=False)
    model = CDDMModule(net="unet-small", jscc_checkpoint=res.manifest["jscc_checkpoint"],
                       image_size=64, encoder_snr_range_db=(0.0, 20.0), channel="awgn",
                       net_kwargs={"ch": 16}, lr=5e-4, ema_decay=0.99, val_snrs_db=(10.0,),
                       seed=seed)
    trainer = pl.Trainer(max_epochs=-1, max_steps=200 if fast else 600, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=progress, limit_val_batches=0, gradient_clip_val=1.0,
                         default_root_dir=res.path)
    trainer.fit(model, ImageDataModule(source="builtin", crop=64, batch_size=16,
                                       crops_per_image=2, seed=seed))
    ckpt = res.path / "cddm_quickstart.ckpt"
    trainer.save_checkpoint(ckpt)
    res.manifest["cddm_training_steps"] = int(trainer.global_step)
    return run_eval_cddm(cddm_checkpoint=str(ckpt), data="builtin", crop=64,
                         snr_db=(0.0, 10.0, 20.0), baselines=(), max_images=16, seed=seed,
                         out=res.path, progress=progress)


def _wdmoe_section(res: ResultsDir, seed: int, fast: bool, progress: bool) -> list[str]:
    """The shipped tiny MoE split over 8 devices: policies on ideal links, then analog links
    with and without the hidden-state CDDM at 10 dB."""
    from experiments.wdmoe import run_wdmoe

    n = 10 if fast else 40
    pol = run_wdmoe(model="tiny", policies=("topk", "wlr:0.3", "joint:0"), transports=("ideal",),
                    limit=n, seed=seed, out=res.path, progress=progress)
    links = run_wdmoe(model="tiny", policies=("topk",),
                      transports=("analog", "analog+cddm", "digital:bf16"), snr_db=(10.0,),
                      limit=n // 2, seed=seed, out=res.path, progress=progress)
    lines = ["", f"## Split MoE language model over the PHY (tiny Mixtral, {n} and {n // 2} "
             "problems)", ""]
    for r in (pol, links):
        lines += (r.path / "summary.md").read_text().splitlines()[4:]
        lines.append("")
    return lines


def run_quickstart(*, out: str | Path = "results", seed: int = 0, progress: bool = True,
                   fast: bool = False) -> ResultsDir:
    """Run the quickstart and return its results folder (digital curves in a sub-run)."""
    snrs = [float(s) for s in range(-5, 26, 5)]
    config = {"analog_snr_db": snrs, "analog_values_per_snr": 2**18, "digital_channel": "awgn",
              "digital_mcs": [4, 13, 20], "fast": fast}
    res = ResultsDir.create("quickstart", config, seed, root=out)
    with res:
        phy.set_seed(seed)
        analog = _analog_section(res, snrs, config["analog_values_per_snr"])
        digital = run_link_curves(
            channel="awgn", mcs=config["digital_mcs"], snr_db=[x / 2 for x in range(-10, 41)],
            block_bits=512, batch_size=50 if fast else 100, max_batches=2 if fast else 4,
            target_block_errors=20 if fast else 50, seed=seed, out=res.path, name="link_curves",
            progress=progress)
        lines = ["# semcom quickstart", "", "## Analog link (MSE per complex symbol, dB)", "",
                 "| channel | SNR (dB) | simulated | theory | link's noise_var |",
                 "|---|---|---|---|---|"]
        lines += [f"| {r['channel']} | {r['snr_db']:g} | {r['mse_db']:.2f} | "
                  f"{r['theory_db']:.2f} | {r['predicted_db']:.2f} |" for r in analog]
        lines += ["", "## Digital link on AWGN (5G LDPC, 512 info bits per block)", "",
                  "| MCS | SNR for BLER 10 % (dB) |", "|---|---|"]
        import csv

        with open(digital.path / "link_curves.csv") as f:
            drows = [dict(r, snr_db=float(r["snr_db"]), bler=float(r["bler"]),
                          num_blocks=int(r["num_blocks"])) for r in csv.DictReader(f)]
        for label in dict.fromkeys(r["label"] for r in drows):
            s = snr_at_bler([r for r in drows if r["label"] == label])
            lines.append(f"| {label} | {'n/a' if s is None else f'{s:.2f}'} |")
        lines += ["", "## Link adaptation (BLER <= 10 %, AWGN, 20 MHz, no overhead)", "",
                  "| SNR (dB) | MCS | rate (Mbit/s) | capacity (Mbit/s) |", "|---|---|---|---|"]
        for s in range(0, 31, 5):
            m = phy.select_mcs(float(s), target_bler=0.1, channel="awgn", table="qam256")
            rate = 0.0 if m is None else phy.mcs_rate_bps(m, 20e6) / 1e6
            lines.append(f"| {s} | {'none' if m is None else m.name} | {rate:.1f} | "
                         f"{phy.capacity_bps(20e6, float(s)) / 1e6:.1f} |")
        jscc_res = _jscc_section(res, seed, fast, progress)
        lines += ["", "## JSCC vs the digital chain (AWGN, CBR 1/6, held-out photos, 64x64)", ""]
        lines += (jscc_res.path / "summary.md").read_text().splitlines()[4:]
        lines += ["", f"The ADJSCC above trained for only {res.manifest['jscc_training_steps']} "
                  "steps: far from converged. Train real models with "
                  "`semcom train-jscc --config experiments/configs/jscc_adjscc_cpu.yaml`."]
        cddm_res = _cddm_section(res, seed, fast, progress)
        lines += ["", f"## CDDM after the equalizer (AWGN, {res.manifest['cddm_training_steps']} "
                  "training steps, same photos)", ""]
        lines += (cddm_res.path / "summary.md").read_text().splitlines()[4:]
        lines += ["", "A CDDM trained for a few hundred steps is a smoke demo, not a result. Train "
                  "real ones with `semcom train-cddm --config "
                  "experiments/configs/cddm_stage2_cpu.yaml` (see the README)."]
        lines += _wdmoe_section(res, seed, fast, progress)
        rel = digital.path.relative_to(res.path)
        lines += ["", f"Digital curves and plot: `{rel}/` inside this folder."]
        text = "\n".join(lines) + "\n"
        res.write_summary(text)
    print(text)
    return res
