"""The ``semcom`` command line."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def _version() -> str:
    try:
        return version("semcom")
    except PackageNotFoundError:  # running from a source tree
        import phy

        return phy.__version__


def _int_list(spec: str) -> list[int]:
    try:
        return [int(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {spec!r}"
        ) from None


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    """Options eval-images and eval-cddm share: SNRs, channel-estimate error, resume."""
    p.add_argument("--snr-db", type=_snr_list, default=_snr_list("0:20:5"))
    p.add_argument("--csi-error-std", type=float, default=0.0,
                   help="std of the receiver's channel-estimate error sigma_h (complex, "
                        "E|e|^2 = sigma_h^2; default 0: perfect CSI)")
    p.add_argument("--resume", default=None,
                   help="an earlier results folder of this command: keep its (system, SNR) "
                        "rows, evaluate the rest")


def _positive_int(spec: str) -> int:
    try:
        v = int(spec)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {spec!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {v}")
    return v


def _snr_list(spec: str) -> list[float]:
    from phy.sweep import parse_snr_range

    try:
        return parse_snr_range(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semcom",
        description="Link-level semantic communication on a Sionna 2 physical layer.",
    )
    p.add_argument("--version", action="version", version=f"semcom {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    q = sub.add_parser("quickstart", help="short tour on the embedded defaults (minutes, CPU)")
    q.add_argument("--out", default="results", help="results root folder (default: results)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fast", action="store_true", help="fewer Monte-Carlo blocks")

    lc = sub.add_parser("link-curves", help="BER/BLER vs SNR of the 5G digital chain per MCS")
    lc.add_argument("--channel", default="awgn",
                    help="awgn | rayleigh | rayleigh-block | tdl-a … tdl-e (default: awgn)")
    lc.add_argument("--mcs", type=_int_list, default=[0, 5, 10],
                    help="comma-separated MCS indices (default: 0,5,10)")
    lc.add_argument("--table", default="qam64", choices=["qam64", "qam256"])
    lc.add_argument("--snr-db", type=_snr_list, default=_snr_list("-5:25:1"),
                    help="start:stop:step (stop included) or a comma list, Es/N0 in dB")
    lc.add_argument("--block-bits", type=int, default=1024,
                    help="information bits per code block (default: 1024)")
    lc.add_argument("--batch-size", type=int, default=100, help="code blocks per batch")
    lc.add_argument("--max-batches", type=int, default=20, help="batches per SNR point at most")
    lc.add_argument("--target-block-errors", type=int, default=100,
                    help="move to the next SNR after this many block errors")
    lc.add_argument("--max-transmissions", type=int, default=1, help="HARQ transmissions (1: off)")
    lc.add_argument("--abstraction", action="store_true",
                    help="draw block outcomes from the BLER table (phy.AbstractDigitalLink) "
                         "instead of decoding: BLER only")
    lc.add_argument("--resume", default=None,
                    help="an earlier link-curves results folder: keep its points, simulate the "
                         "rest")
    lc.add_argument("--seed", type=int, default=0)
    lc.add_argument("--decoder", default="auto", choices=["auto", "cpu", "sionna"],
                    help="LDPC decoder (default auto: the compiled layered decoder on CPU)")
    lc.add_argument("--out", default="results", help="results root folder")
    lc.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("eval-images",
                        help="PSNR/MS-SSIM vs SNR of a JSCC checkpoint and the digital baselines")
    ev.add_argument("--checkpoint", default=None,
                    help="JSCCModule checkpoint (.ckpt) or pretrained:<name> (a shipped codec, "
                         "see jscc.pretrained.available())")
    ev.add_argument("--data", default="builtin", help="'builtin' or an image folder")
    ev.add_argument("--crop", type=_positive_int, default=64,
                    help="centre crop size in pixels (>= 1)")
    ev.add_argument("--channel", default="awgn", help="awgn | rayleigh | rayleigh-block | tdl-a …")
    _add_eval_options(ev)
    ev.add_argument("--baselines", default="jpeg2000+ldpc,jpeg2000+capacity",
                    help="comma list of <codec>+ldpc / <codec>+capacity with codec jpeg2000, "
                         "hevc (BPG-class), avif or learned (needs --ladder); all (every "
                         "codec but learned) | none. Default: the JPEG2000 ones")
    ev.add_argument("--ladder", default=None,
                    help="hyperprior ladder for the learned baselines "
                         "(python -m experiments.tools.train_hyperprior)")
    ev.add_argument("--mcs", type=_int_list, default=[0, 5, 9, 13, 17, 22],
                    help="MCS indices of the JPEG2000+LDPC curves")
    ev.add_argument("--cbr", type=float, default=None, help="CBR when no checkpoint is given")
    ev.add_argument("--max-images", type=_positive_int, default=None,
                    help="evaluate at most this many images (>= 1)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="results")
    ev.add_argument("--no-progress", action="store_true")

    tj = sub.add_parser("train-jscc", add_help=False,
                        help="train a JSCC codec (LightningCLI; --config experiments/configs/"
                             "jscc_<name>.yaml, then any LightningCLI option)")
    tj.add_argument("lightning_args", nargs=argparse.REMAINDER)

    tc = sub.add_parser("train-cddm", add_help=False,
                        help="train CDDM stage 2 or 3 (LightningCLI; --config experiments/"
                             "configs/cddm/cddm_stage<2|3>_cpu.yaml, then any LightningCLI option)")
    tc.add_argument("lightning_args", nargs=argparse.REMAINDER)

    ec = sub.add_parser("eval-cddm",
                        help="channel MSE and PSNR vs SNR of JSCC with and without CDDM")
    ec.add_argument("--cddm", required=True, help="stage-2 CDDMModule checkpoint (.ckpt)")
    ec.add_argument("--jscc", default=None,
                    help="JSCCModule checkpoint (default: the one the CDDM was trained on, "
                         "looked up as recorded and relative to the CDDM checkpoint)")
    ec.add_argument("--decoder", action="append", default=[], metavar="SNR=CKPT",
                    help="stage-3 decoder checkpoint for an SNR in dB (repeatable)")
    ec.add_argument("--data", default="builtin", help="'builtin' or an image folder")
    ec.add_argument("--crop", type=_positive_int, default=64,
                    help="centre crop size in pixels (>= 1)")
    _add_eval_options(ec)
    ec.add_argument("--baselines", default="jpeg2000+ldpc,jpeg2000+capacity",
                    help="as for eval-images: <codec>+ldpc / <codec>+capacity, all, none")
    ec.add_argument("--mcs", type=_int_list, default=[0, 5, 9, 13, 17, 22])
    ec.add_argument("--convention", default=None, choices=["official", "consistent"],
                    help="sampler convention (default: the checkpoint's)")
    ec.add_argument("--floor-db", default="checkpoint",
                    help="SNR floor of the start step in dB, 'none', or 'checkpoint' (default)")
    ec.add_argument("--max-images", type=_positive_int, default=None,
                    help="evaluate at most this many images (>= 1)")
    ec.add_argument("--seed", type=int, default=0)
    ec.add_argument("--out", default="results")
    ec.add_argument("--no-progress", action="store_true")

    wd = sub.add_parser("wdmoe", help="split MoE LM over the PHY: accuracy and latency per "
                                      "policy, transport and SNR")
    wd.add_argument("--model", default="tiny",
                    help="'tiny' (shipped, arithmetic), 'text' (shipped, held-out standard-library "
                         "source in bits per byte) or a local Hugging Face MoE checkpoint folder")
    wd.add_argument("--policy", default="topk,wlr:0.2,joint",
                    help="comma list: topk | wlr:<theta>[:rule] | joint[:theta] | "
                         "link-aware[:theta] (default: topk,wlr:0.2,joint)")
    wd.add_argument("--transport", default="ideal",
                    help="comma list: ideal | digital:<bf16|fp16|int8|int4> | analog | "
                         "analog+cddm (default: ideal)")
    wd.add_argument("--snr-db", default=None,
                    help="link SNRs in dB (start:stop:step or comma list); default: the cell's "
                         "link budget")
    wd.add_argument("--bandwidth-mhz", type=float, default=100.0)
    wd.add_argument("--devices", type=int, default=8)
    wd.add_argument("--limit", type=int, default=50,
                    help="examples of the task (128-byte windows for --model text)")
    wd.add_argument("--compute-model", default="flops", choices=["flops", "roofline"])
    wd.add_argument("--digits", type=int, default=None,
                    help="operand digits of the arithmetic task for non-tiny models")
    wd.add_argument("--baseline", default="",
                    help="comma list of split:<cut> (the model split at a layer boundary, the "
                         "activation on the uplink), run beside the policies")
    wd.add_argument("--resume", default=None, help="an earlier wdmoe results folder")
    wd.add_argument("--seed", type=int, default=0)
    wd.add_argument("--out", default="results")
    wd.add_argument("--no-progress", action="store_true")

    eb = sub.add_parser("edge-batching",
                        help="batched LLM serving at edge nodes: throughput per scheduler "
                             "(OT-GAH, EDF, FIFO, ...) against users, nodes and bandwidth")
    eb.add_argument("--users", default="10:200:10",
                    help="users per instance (start:stop:step or comma list)")
    eb.add_argument("--nodes", type=_int_list, default=[1, 3], help="edge nodes (comma list)")
    eb.add_argument("--scheduler", default=",".join(_edge_schedulers()),
                    help="comma list of " + ", ".join(_edge_schedulers(all_=True)))
    eb.add_argument("--bandwidth-mhz", default="20,1,0.2",
                    help="UL and DL bandwidth per node in MHz (comma list)")
    eb.add_argument("--links", default="phy,shannon",
                    help="comma list: phy (MCS, BLER curves, HARQ) | shannon (capacity)")
    eb.add_argument("--instances", type=_positive_int, default=3,
                    help="random instances per point")
    eb.add_argument("--search-sizes", default="4:14:2",
                    help="N of the OT vs brute-force search study (one node; 'none' skips)")
    eb.add_argument("--deadline-s", default="5,30", help="low,high of the uniform deadlines")
    eb.add_argument("--ot-max-nodes", type=_positive_int, default=100_000,
                    help="evaluations after which OT returns its best batch so far")
    eb.add_argument("--resume", default=None, help="an earlier edge-batching results folder")
    eb.add_argument("--seed", type=int, default=0)
    eb.add_argument("--out", default="results")
    eb.add_argument("--no-progress", action="store_true")
    return p


def _edge_schedulers(all_: bool = False) -> list[str]:
    from experiments.recipes.edge_batching import DEFAULT_SCHEDULERS

    return [*DEFAULT_SCHEDULERS, "brute-force"] if all_ else list(DEFAULT_SCHEDULERS)


def _int_range(spec: str, name: str) -> list[int]:
    """``"10:200:10"`` (inclusive) or ``"10,20,40"``."""
    try:
        if ":" in spec:
            a, b, c = (int(x) for x in spec.split(":"))
            if c < 1 or b < a:
                raise ValueError
            return list(range(a, b + 1, c))
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name} must be start:stop:step (step >= 1) or a comma list of "
                         f"integers, got {spec!r}") from None


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--snr-db -5:25:1`` → ``--snr-db=-5:25:1`` (argparse reads "-5:25:1" as an option)."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        if argv[i] in _RANGE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            next(it, None)
        else:
            out.append(argv[i])
    return out


_RANGE_OPTIONS = ("--snr-db",)


def _csv_list(spec: str) -> list[str]:
    """``"topk, wlr:0.2"`` → ``["topk", "wlr:0.2"]``."""
    items = [x.strip() for x in spec.split(",") if x.strip()]
    if not items:
        raise ValueError(f"expected a comma-separated list, got {spec!r}")
    return items


def _decoder_map(specs: list[str]) -> dict[float, str]:
    """``["10=a.ckpt", "15=b.ckpt"]`` → ``{10.0: "a.ckpt", 15.0: "b.ckpt"}``."""
    out = {}
    for spec in specs:
        snr, sep, path = spec.partition("=")
        try:
            out[float(snr)] = path
        except ValueError:
            sep = ""
        if not sep or not path:
            raise ValueError(f"--decoder must be SNR=CHECKPOINT (e.g. 10=run/last.ckpt), got "
                             f"{spec!r}")
    return out


def _floor(spec: str) -> float | str | None:
    if spec in ("checkpoint", "none"):
        return None if spec == "none" else spec
    try:
        return float(spec)
    except ValueError:
        raise ValueError(f"--floor-db must be a number (dB), 'none' or 'checkpoint', got "
                         f"{spec!r}") from None


def _run_command(args: argparse.Namespace) -> Any:
    """Run the recipe behind ``args.command``; returns its results folder."""
    if args.command == "quickstart":
        from experiments.recipes.quickstart import run_quickstart

        return run_quickstart(out=args.out, seed=args.seed, fast=args.fast)
    if args.command == "link-curves":
        from experiments.recipes.link_curves import run_link_curves

        return run_link_curves(
            channel=args.channel, mcs=args.mcs, table=args.table, snr_db=args.snr_db,
            block_bits=args.block_bits, batch_size=args.batch_size,
            max_batches=args.max_batches, target_block_errors=args.target_block_errors,
            max_transmissions=args.max_transmissions, seed=args.seed, out=args.out,
            decoder=args.decoder, abstraction=args.abstraction, resume=args.resume,
            progress=not args.no_progress)
    if args.command == "eval-images":
        from experiments.recipes.eval_images import CODEC_BASELINES, run_eval_images

        bl = {"all": list(CODEC_BASELINES), "none": []}.get(
            args.baselines, [b.strip() for b in args.baselines.split(",") if b.strip()])
        return run_eval_images(
            checkpoint=args.checkpoint, data=args.data, crop=args.crop, channel=args.channel,
            snr_db=args.snr_db, baselines=bl, mcs=args.mcs, cbr=args.cbr,
            max_images=args.max_images, ladder=args.ladder, seed=args.seed, out=args.out,
            resume=args.resume, csi_error_std=args.csi_error_std,
            progress=not args.no_progress)
    if args.command == "eval-cddm":
        from experiments.recipes.eval_cddm import run_eval_cddm
        from experiments.recipes.eval_images import CODEC_BASELINES

        bl = {"all": list(CODEC_BASELINES), "none": []}.get(
            args.baselines, [b.strip() for b in args.baselines.split(",") if b.strip()])
        return run_eval_cddm(
            cddm_checkpoint=args.cddm, jscc_checkpoint=args.jscc,
            decoders=_decoder_map(args.decoder), data=args.data, crop=args.crop,
            snr_db=args.snr_db, baselines=bl, mcs=args.mcs, max_images=args.max_images,
            convention=args.convention, floor_db=_floor(args.floor_db), seed=args.seed,
            out=args.out, resume=args.resume, csi_error_std=args.csi_error_std,
            progress=not args.no_progress)
    if args.command == "wdmoe":
        from experiments.recipes.wdmoe import run_wdmoe
        from phy.sweep import parse_snr_range

        return run_wdmoe(
            model=args.model, policies=_csv_list(args.policy),
            transports=_csv_list(args.transport),
            snr_db=[None] if args.snr_db is None else parse_snr_range(args.snr_db),
            bandwidth_mhz=args.bandwidth_mhz, devices=args.devices, limit=args.limit,
            compute_model=args.compute_model, digits=args.digits, seed=args.seed,
            out=args.out, resume=args.resume, progress=not args.no_progress,
            baselines=[b.strip() for b in args.baseline.split(",") if b.strip()])
    if args.command == "edge-batching":
        from experiments.recipes.edge_batching import run_edge_batching

        try:
            bws = [float(x) for x in _csv_list(args.bandwidth_mhz)]
            lo, hi = (float(x) for x in args.deadline_s.split(","))
        except ValueError:
            raise ValueError("--bandwidth-mhz must be a comma list of numbers and "
                             "--deadline-s two numbers low,high") from None
        return run_edge_batching(
            users=_int_range(args.users, "--users"), nodes=args.nodes,
            schedulers=_csv_list(args.scheduler), bandwidth_mhz=bws,
            links=_csv_list(args.links), instances=args.instances,
            search_sizes=[] if args.search_sizes == "none"
            else _int_range(args.search_sizes, "--search-sizes"),
            deadline_s=(lo, hi), ot_max_nodes=args.ot_max_nodes, seed=args.seed,
            out=args.out, resume=args.resume, progress=not args.no_progress)
    raise ValueError(f"unknown command {args.command!r}")  # argparse rejects these first


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("train-jscc", "train-cddm"):
        # LightningCLI owns these options (including --help).
        if argv[0] == "train-jscc":
            from experiments.recipes.train_jscc import main as train_main
        else:
            from experiments.recipes.train_cddm import main as train_main

        train_main(argv[1:])
        return 0
    args = parser.parse_args(_join_negative_values(argv))
    if args.command is None:
        parser.print_help()
        return 0
    from experiments.reporting.console import quiet_libraries

    try:
        with quiet_libraries():  # our progress and results, not the libraries' notes
            res = _run_command(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"semcom {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM; the manifest says "interrupted"
        from experiments.reporting.results import Terminated

        print(f"semcom {args.command}: interrupted", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    print(f"results: {res.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
