"""The ``semcom`` command line.

Every recipe subcommand is built by jsonargparse from its recipe: the fields of its config
dataclass (``run_<name>(cfg: <Name>Config, *, out, ...)``: the settings that decide the
results) and the function's keyword parameters (where and how to run), or the function's
signature alone for a recipe without a config class. The options, their types, defaults and
help exist once, in the dataclass or the function. Each subcommand takes ``--config
file.yaml`` (any option as a YAML key) and ``--print_config`` (the resolved configuration, to
save and edit), and prints the resolved configuration before it runs. Compact values
(``--snr_db 0:20:5``, ``--mcs 0,5,10``, ``--policies topk,wlr:0.2``) are
:mod:`experiments.values` types.

Options are spelled as the fields and parameters (``--snr_db``); the spellings of earlier
versions keep working: dashes (``--snr-db``), flags without a value (``--fast``,
``--no-progress``), and ``--policy``, ``--transport``, ``--baseline``, ``--scheduler``,
``--cddm``, ``--jscc`` and repeated ``--decoder SNR=CKPT``.

``train-jscc`` and ``train-cddm`` are LightningCLI commands (the Lightning modules' own
signatures, ``--config``, ``--print_config``).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["RECIPES", "entry_point", "main"]

#: subcommand -> (module, function, one-line help): the recipes (each writes a results folder)
#: and the tools (a results folder, or the artifact they make)
RECIPES: dict[str, tuple[str, str, str]] = {
    "quickstart": ("experiments.recipes.quickstart", "run_quickstart",
                   "short tour on the embedded defaults (minutes, CPU)"),
    "link-curves": ("experiments.recipes.link_curves", "run_link_curves",
                    "BER/BLER vs SNR of the 5G digital chain per MCS"),
    "eval-images": ("experiments.recipes.eval_images", "run_eval_images",
                    "PSNR/MS-SSIM vs SNR of a JSCC checkpoint and the digital baselines"),
    "eval-cddm": ("experiments.recipes.eval_cddm", "run_eval_cddm",
                  "channel MSE and PSNR vs SNR of JSCC with and without CDDM"),
    "wdmoe": ("experiments.recipes.wdmoe", "run_wdmoe",
              "split MoE LM over the PHY: accuracy and latency per policy, transport and SNR"),
    "digital-envelope": ("experiments.recipes.digital_envelope", "run_digital_envelope",
                         "best-MCS envelope of JPEG2000 + 5G LDPC on an image set"),
    "rate-distortion": ("experiments.recipes.rate_distortion", "run_rate_distortion",
                        "bpp-PSNR curves of every source codec (no channel)"),
    "cddm-decoder-study": ("experiments.recipes.cddm_decoder_study", "run_cddm_decoder_study",
                           "does a decoder re-trained on CDDM output gain over plain JSCC?"),
    "make-bler-table": ("experiments.tools.make_bler_table", "make_bler_table",
                        "simulate (or resume) the BLER table shipped in phy/data"),
    "make-quant-table": ("experiments.tools.make_quant_table", "make_quant_table",
                         "accuracy of the shipped models per weight precision (torchao)"),
    "make-lm-eval-tasks": ("experiments.tools.make_lm_eval_tasks", "make_lm_eval_tasks",
                           "the offline lm-eval tasks of the shipped tiny model"),
    "train-hyperprior": ("experiments.tools.train_hyperprior", "train_hyperprior",
                         "a CompressAI scale-hyperprior rate ladder (the learned baseline)"),
    "train-hidden-cddm": ("experiments.tools.train_hidden_cddm", "train_hidden_cddm",
                          "the 1-D CDDM of a split MoE model's hidden states (analog+cddm)"),
    "export-pretrained": ("experiments.tools.export_pretrained", "export_pretrained",
                          "a trained JSCC checkpoint as a shipped entry (weights + card)"),
    "make-pretrained-cddm": ("experiments.tools.make_pretrained_cddm", "make_pretrained_cddm",
                             "the shipped CDDM of a shipped JSCC codec (stages 2 and 3)"),
    "train-tiny-moe": ("experiments.tools.train_tiny_moe", "train_tiny_moe",
                       "the shipped tiny arithmetic MoE (wdmoe_link/data/tiny_moe)"),
    "train-text-moe": ("experiments.tools.train_text_moe", "train_text_moe",
                       "the shipped standard-library text MoE (wdmoe_link/data/text_moe)"),
    "check-bler-table": ("experiments.tools.check_bler_table", "run_check_bler_table",
                         "the shipped BLER table against Sionna's PHYAbstraction tables"),
    "edge-batching": ("experiments.recipes.edge_batching", "run_edge_batching",
                      "batched LLM serving at edge nodes: throughput per scheduler against "
                      "users, nodes and bandwidth"),
    "bench-wdmoe": ("experiments.bench_wdmoe", "run_bench_wdmoe",
                    "benchmark: time per token of the split MoE against the unsplit model"),
    "bench-link": ("experiments.bench_link", "run_bench_link",
                   "benchmark: LDPC decoders, demappers and links against bare Sionna"),
    "bench-cddm": ("experiments.bench_cddm", "run_bench_cddm",
                   "benchmark: channel MSE and PSNR of JSCC with and without CDDM"),
    "bench-train": ("experiments.bench_train", "run_bench_train",
                    "benchmark: training throughput of Lightning against bare loops"),
    "bench-edge": ("experiments.bench_edge", "run_bench_edge",
                   "benchmark: search effort and time of the edge batching schedulers"),
}
_TRAINING = {"train-jscc": "train a JSCC codec (LightningCLI; --config "
                           "experiments/configs/images/jscc_<name>.yaml)",
             "train-cddm": "train CDDM stage 2 or 3 (LightningCLI; --config "
                           "experiments/configs/cddm/cddm_stage<2|3>_cpu.yaml)"}
#: Parameters of the recipe functions that are not command-line settings.
_NOT_OPTIONS = {"name", "analog_systems", "extra", "config_extra"}
#: Option names of earlier versions, per subcommand.
_RENAMED = {"wdmoe": {"policy": "policies", "transport": "transports", "baseline": "baselines"},
            "edge-batching": {"scheduler": "schedulers"},
            "eval-cddm": {"cddm": "cddm_checkpoint", "jscc": "jscc_checkpoint",
                          "decoder": "decoders"},
            "make-pretrained-cddm": {"name": "entry"}}
_BARE = ("help", "print_config")  # options that may come without a value


def entry_point(command: str) -> Callable[[list[str] | None], int]:
    """The ``main`` of a module that is also ``semcom <command>``: its ``python -m`` entry
    point runs the same command (``argv`` default: the process's arguments)."""

    def run(argv: list[str] | None = None) -> int:
        return main([command, *(sys.argv[1:] if argv is None else argv)])

    run.__doc__ = f"``semcom {command}`` with ``argv`` (default: the process's arguments)."
    return run


def _version() -> str:
    try:
        return version("semcom")
    except PackageNotFoundError:  # running from a source tree
        import phy

        return phy.__version__


def _recipe(command: str) -> Callable[..., Any]:
    module, function, _ = RECIPES[command]
    return getattr(importlib.import_module(module), function)


def config_class(fn: Callable[..., Any]) -> type | None:
    """The config dataclass of a recipe ``fn(cfg: XConfig, *, ...)`` (its fields are the
    command's settings), or None for a recipe whose keyword parameters are its settings."""
    import dataclasses
    import typing

    if "cfg" not in inspect.signature(fn).parameters:
        return None
    hint = typing.get_type_hints(fn).get("cfg")
    for cls in (*typing.get_args(hint), hint):
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            return cls
    raise TypeError(f"{fn.__name__}: cfg must be annotated with a dataclass, got {hint!r}")


def _options(fn: Callable[..., Any]) -> dict[str, Any]:
    """Option name -> default of a recipe: its config's fields, then its keyword parameters
    (``cfg``, ``**settings`` and :data:`_NOT_OPTIONS` are not options)."""
    import dataclasses

    cls = config_class(fn)
    out = {} if cls is None else {f.name: f.default for f in dataclasses.fields(cls)}
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for n, p in inspect.signature(fn).parameters.items():
        if p.kind in named and n != "cfg" and n not in _NOT_OPTIONS:
            out[n] = p.default
    return out


def _bool_options(fn: Callable[..., Any]) -> set[str]:
    return {n for n, default in _options(fn).items() if isinstance(default, bool)}


def normalize_argv(command: str, args: list[str], fn: Callable[..., Any]) -> list[str]:
    """Rewrite earlier spellings into ``--name=value`` tokens of the function's parameters:
    dashes to underscores, renamed options, value-less flags (``--fast`` -> ``--fast=true``,
    ``--no-progress`` -> ``--progress=false``), repeated ``--decoder`` into one
    ``--decoders``. The token after an option is always its value (so ``--snr_db -5:25:1``
    works)."""
    renamed = _RENAMED.get(command, {})
    flags = _bool_options(fn)
    out: list[str] = []
    decoders: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("--") or token == "--":
            out.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key.startswith("no_") and key[3:] in flags and not eq:
            out.append(f"--{key[3:]}=false")
            continue
        key = renamed.get(key, key)
        if not eq:
            if key in _BARE or (key in flags and (i >= len(args)
                                                  or args[i].lower() not in ("true", "false"))):
                out.append(f"--{key}" if key in _BARE else f"--{key}=true")
                continue
            if i < len(args):
                value, i = args[i], i + 1
        if command == "eval-cddm" and key == "decoders":
            if not decoders:
                out.append("")  # the place of the joined option, filled in below
                at = len(out) - 1
            decoders.append(value)
            continue
        out.append(f"--{key}={value}")
    if decoders:
        out[at] = "--decoders=" + ",".join(decoders)
    return out


def build_parser(command: str) -> Any:
    """The jsonargparse parser of a recipe subcommand (from its function's signature)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from experiments.values import register

    register()
    fn = _recipe(command)
    parser = ArgumentParser(prog=f"semcom {command}", description=RECIPES[command][2],
                            exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile,
                        help="a YAML file of options (any option below as a key)")
    import dataclasses

    cls = config_class(fn)
    skip = _NOT_OPTIONS & set(inspect.signature(fn).parameters)
    if cls is not None:  # the settings, from the config dataclass
        parser.add_class_arguments(cls)
        skip |= {"cfg", *(f.name for f in dataclasses.fields(cls))}  # (and from **settings)
    parser.add_function_arguments(fn, skip=skip)
    return parser


def _print_help() -> None:
    print(f"usage: semcom [--version] COMMAND [options]\n\nLink-level semantic communication "
          f"on a Sionna 2 physical layer (semcom {_version()}).\n\ncommands:")
    for name, (_, _, text) in RECIPES.items():
        print(f"  {name:<15} {text}")
    for name, text in _TRAINING.items():
        print(f"  {name:<15} {text}")
    print("\n`semcom COMMAND --help` lists a command's options; every recipe command takes "
          "--config file.yaml and --print_config.")


def _error_text(err: BaseException) -> str:
    """A parser error in one line: the option and what it expects (of a Union, the first
    member's reason, not the list of every member)."""
    import re

    text = str(err)
    key = re.match(r'Parser key "([^"]+)"', text)
    reasons = [m.group(1) for m in re.finditer(r"Not of type \w+: (.+)", text)]
    if key and reasons:
        return f"--{key.group(1)}: {reasons[0]}"
    return " ".join(ln.strip() for ln in text.splitlines() if ln.strip())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _TRAINING:  # LightningCLI owns these options (including --help)
        if argv[0] == "train-jscc":
            from experiments.recipes.train_jscc import main as train_main
        else:
            from experiments.recipes.train_cddm import main as train_main

        train_main(argv[1:])
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        _print_help()
        return 0
    if argv[0] == "--version":
        print(f"semcom {_version()}")
        raise SystemExit(0)
    command = argv[0]
    if command not in RECIPES:
        print(f"semcom: error: unknown command {command!r}; commands: "
              f"{[*RECIPES, *_TRAINING]}", file=sys.stderr)
        return 2
    from jsonargparse import ArgumentError

    parser = build_parser(command)
    try:
        cfg = parser.parse_args(normalize_argv(command, argv[1:], _recipe(command)))
    except ArgumentError as err:
        print(f"semcom {command}: error: {_error_text(err)}", file=sys.stderr)
        return 2
    fn = _recipe(command)
    kwargs = {k: getattr(cfg, k) for k in _options(fn)}  # parsed values
    cls = config_class(fn)
    import yaml

    dumped = yaml.safe_dump(yaml.safe_load(parser.dump(cfg)), default_flow_style=None,
                            sort_keys=False, width=100).rstrip().splitlines()
    print("\n  ".join([f"semcom {command}, resolved configuration:", *dumped]), flush=True)
    return _run(command, kwargs, cls)


def _run(command: str, kwargs: dict[str, Any], cls: type | None = None) -> int:
    import dataclasses

    from experiments.reporting.console import quiet_libraries

    try:
        if cls is not None:  # the settings become the config (checked before any work)
            names = {f.name for f in dataclasses.fields(cls)}
            kwargs = {"cfg": cls(**{k: v for k, v in kwargs.items() if k in names}),
                      **{k: v for k, v in kwargs.items() if k not in names}}
        with quiet_libraries():  # our progress and results, not the libraries' notes
            res = _recipe(command)(**kwargs)
    except (ValueError, FileNotFoundError) as err:
        print(f"semcom {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM; the manifest says "interrupted"
        from experiments.reporting.results import Terminated

        print(f"semcom {command}: interrupted", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    print(f"results: {res.path}" if hasattr(res, "path") else f"wrote: {res}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
