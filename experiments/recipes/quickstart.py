"""``semcom quickstart``: a short tour of semcom on the embedded defaults (minutes on a CPU).

1. Analog link: MSE of MMSE-equalized unit-power symbols vs SNR on AWGN and per-symbol Rayleigh,
   against the closed forms N0/(1+N0) and N0·e^N0·E1(N0).
2. Digital link: BER/BLER of three MCSs (QPSK, 16QAM, 64QAM) on AWGN with 5G LDPC.
3. Link adaptation: the MCS :func:`phy.select_mcs` picks from the shipped BLER table, its rate
   over 20 MHz and the Shannon capacity.
4. Images (the main figure, ``psnr_vs_snr.png``): the shipped ADJSCC (CBR 1/12) and ADJSCC +
   CDDM against JPEG2000 + 5G LDPC per MCS, their best-MCS envelope (drawn as steps) and the
   capacity bound, on crops of the held-out built-in photos, AWGN 0-20 dB.
5. Train your own: a small ADJSCC trained for a few hundred steps (a demo, labelled as such).
6. The shipped tiny MoE split over 8 devices (policies, then analog / CDDM / digital links).
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
from experiments.recipes.link_curves import link_curve_numbers, run_link_curves, snr_at_bler
from experiments.reporting.console import quiet_libraries
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir

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
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "MSE per complex symbol (dB)",
                "AnalogLink + MMSE equalizer")
    fig.tight_layout()
    res.save_figure(fig, "analog_mse.png")
    plt.close(fig)
    return rows


def _pretrained_section(res: ResultsDir, seed: int, fast: bool) -> list[str]:
    """The main figure: shipped ADJSCC and ADJSCC + CDDM against JPEG2000 + 5G LDPC per MCS,
    their envelope and the capacity bound, on crops of the held-out built-in photos."""
    from experiments.recipes.pretrained_curves import plot_curves, pretrained_curves
    from jscc.data import BuiltinPhotosDataset

    ds = BuiltinPhotosDataset(crop=128, train=False, num_crops=4 if fast else 8)
    images = torch.stack([ds[i] for i in range(len(ds))])
    snrs = [float(s) for s in range(0, 21, 4 if fast else 2)]
    cddm_snrs = [float(s) for s in range(0, 21, 4)]
    mcs = [5, 9, 13, 17, 22]
    res.manifest.update(image_crops=len(ds), image_snr_db=snrs, cddm_snr_db=cddm_snrs,
                        image_mcs=mcs)
    points = pretrained_curves(images, snr_db=snrs, cddm_snr_db=cddm_snrs, mcs=mcs, seed=seed,
                               progress=lambda msg: print(f"  {msg}", flush=True))
    res.write_csv("psnr_vs_snr.csv", [vars(p) for p in points])
    fig = plot_curves(points, f"AWGN, CBR 1/12, {len(ds)} held-out crops 128x128 "
                              "(astronaut, coffee, flower)")
    res.save_figure(fig, "psnr_vs_snr.png")
    plt.close(fig)
    cols = ["jscc", "jscc+cddm", "jpeg2000+ldpc/best-mcs", "jpeg2000+capacity"]
    lines = ["| SNR (dB) | ADJSCC | ADJSCC + CDDM | JPEG2000+LDPC, best MCS | "
             "JPEG2000 + capacity |", "|---|---|---|---|---|"]
    for s in snrs:
        cells = []
        for c in cols:
            p = next((p for p in points if p.method == c and p.snr_db == s), None)
            if p is None:
                cells.append("")
            else:
                note = f" ({p.note})" if c.endswith("best-mcs") else ""
                cells.append(f"{p.psnr:.2f}{note}")
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    return lines


def _train_demo_section(res: ResultsDir, seed: int, fast: bool, progress: bool) -> list[str]:
    """Train your own: a small ADJSCC for a few hundred steps on the built-in photos."""
    import pytorch_lightning as pl

    from jscc.data import BuiltinPhotosDataset, ImageDataModule
    from jscc.evaluation import evaluate_codec
    from jscc.lightning import JSCCModule

    pl.seed_everything(seed, verbose=False)
    steps = 150 if fast else 400
    model = JSCCModule(codec="adjscc:num_filters=32", cbr=1 / 12,
                       train_snr_range_db=(0.0, 20.0), val_snrs_db=(10.0,), lr=2e-3, seed=seed,
                       lr_schedule="cosine", lr_min=2e-4)
    trainer = pl.Trainer(max_epochs=-1, max_steps=steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=False, limit_val_batches=0,
                         default_root_dir=res.path)
    print(f"  training a small ADJSCC for {steps} steps", flush=True)
    trainer.fit(model, ImageDataModule(source="builtin", crop=64, batch_size=16, seed=seed))
    ckpt = res.path / "adjscc_demo.ckpt"
    trainer.save_checkpoint(ckpt)
    ds = BuiltinPhotosDataset(crop=128, train=False, num_crops=8)
    images = torch.stack([ds[i] for i in range(len(ds))])
    scores = evaluate_codec(model.codec.eval().transmit, images, phy.AnalogLink(phy.AWGN()),
                            [0.0, 10.0, 20.0], seed=seed)
    return [f"An ADJSCC (32 filters, CBR 1/12) trained here for {trainer.global_step} steps on "
            f"the built-in photos (checkpoint `{ckpt.name}`): PSNR "
            + ", ".join(f"{r.psnr:.2f} dB at {r.snr_db:g} dB" for r in scores)
            + ". Train a real one with `semcom train-jscc --config "
            "experiments/configs/pretrained/adjscc_awgn_cbr1-12.yaml`."]


def _wdmoe_section(res: ResultsDir, seed: int, fast: bool, progress: bool) -> list[str]:
    """The shipped tiny MoE split over 8 devices: policies on ideal links, then analog links
    with and without the hidden-state CDDM at 10 dB."""
    from experiments.recipes.wdmoe import run_wdmoe, summary_table

    n = 10 if fast else 20
    pol = run_wdmoe(model="tiny", policies=("topk", "wlr:0.3", "joint:0"), transports=("ideal",),
                    limit=n, seed=seed, out=res.path, progress=progress)
    links = run_wdmoe(model="tiny", policies=("topk",),
                      transports=("analog", "analog+cddm", "digital:bf16"), snr_db=(10.0,),
                      limit=n // 2, seed=seed, out=res.path, progress=progress)
    lines = ["", f"## Split MoE language model over the PHY (tiny Mixtral, {n} and {n // 2} "
             "problems)", ""]
    for r in (pol, links):
        lines += [*summary_table(r.tables["results.csv"]), ""]
    return lines


def run_quickstart(*, out: str | Path = "results", seed: int = 0, progress: bool = True,
                   fast: bool = False) -> ResultsDir:
    """Run the quickstart and return its results folder (digital curves in a sub-run).

    Args:
        out: root folder of the results.
        seed: seed of every section.
        progress: show progress bars.
        fast: fewer Monte-Carlo blocks and examples.
    """
    snrs = [float(s) for s in range(-5, 26, 5)]
    config = {"analog_snr_db": snrs, "analog_values_per_snr": 2**18, "digital_channel": "awgn",
              "digital_mcs": [4, 13, 20], "fast": fast}
    res = ResultsDir.create("quickstart", config, seed, root=out)
    with quiet_libraries(), res:
        phy.set_seed(seed)
        print("Analog link: MSE against the closed forms ...", flush=True)
        analog = _analog_section(res, snrs, config["analog_values_per_snr"])
        print("Digital link: 5G LDPC BER/BLER curves ...", flush=True)
        digital = run_link_curves(
            channel="awgn", mcs=config["digital_mcs"], snr_db=[float(x) for x in range(-5, 21)],
            block_bits=512, batch_size=50 if fast else 100, max_batches=2,
            target_block_errors=20 if fast else 40, seed=seed, out=res.path, name="link_curves",
            progress=progress)
        lines = ["# semcom quickstart", "", "## Analog link (MSE per complex symbol, dB)", "",
                 "| channel | SNR (dB) | simulated | theory | link's noise_var |",
                 "|---|---|---|---|---|"]
        lines += [f"| {r['channel']} | {r['snr_db']:g} | {r['mse_db']:.2f} | "
                  f"{r['theory_db']:.2f} | {r['predicted_db']:.2f} |" for r in analog]
        lines += ["", "## Digital link on AWGN (5G LDPC, 512 info bits per block)", "",
                  "| MCS | SNR for BLER 10 % (dB) |", "|---|---|"]
        drows = link_curve_numbers(digital.tables["link_curves.csv"])
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
        print("Pretrained JSCC against the digital chain ...", flush=True)
        lines += ["", "## Pretrained ADJSCC and ADJSCC + CDDM against JPEG2000 + 5G LDPC "
                  "(AWGN, CBR 1/12, PSNR in dB; plot `psnr_vs_snr.png`)", ""]
        lines += _pretrained_section(res, seed, fast)
        print("Train-your-own demo ...", flush=True)
        lines += ["", "## Train your own (demo)", ""]
        lines += _train_demo_section(res, seed, fast, progress)
        print("Split MoE language model over the PHY ...", flush=True)
        lines += _wdmoe_section(res, seed, fast, progress)
        rel = digital.path.relative_to(res.path)
        lines += ["", f"Digital curves and plot: `{rel}/` inside this folder."]
        text = "\n".join(lines) + "\n"
        res.write_summary(text)
    print(text)
    return res
