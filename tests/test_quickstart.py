"""``semcom quickstart``'s config: its defaults, and a bad value refused (naming the field and
its range) before any results folder exists. The tour itself takes minutes and is not run
here."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli import main
from experiments.recipes.quickstart import (
    AdaptationPoint,
    AnalogPoint,
    QuickstartConfig,
    QuickstartResult,
    run_quickstart,
)
from experiments.reporting.quickstart import quickstart_summary


def test_defaults_are_the_tour_of_the_readme() -> None:
    cfg = QuickstartConfig()
    assert cfg.analog_snr_db == (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    assert cfg.analog_values_per_snr == 2**18
    assert cfg.digital_mcs == (4, 13, 20)
    assert cfg.digital_snr_db == tuple(float(s) for s in range(-5, 21))
    assert (cfg.image_crops, cfg.train_steps, cfg.wdmoe_limit) == (8, 400, 20)
    fast = QuickstartConfig(fast=True, analog_snr_db="0:10:5", digital_mcs="4,13")
    assert fast.analog_snr_db == (0.0, 5.0, 10.0) and fast.digital_mcs == (4, 13)
    assert (fast.image_crops, fast.train_steps, fast.wdmoe_limit) == (4, 150, 10)
    lc = fast.link_curves_config()
    assert (lc.block_bits, lc.batch_size, lc.target_block_errors) == (512, 50, 20)
    assert cfg.to_dict()["digital_channel"] == "awgn" and "seed" not in cfg.to_dict()


@pytest.mark.parametrize(("settings", "message"), [
    ({"analog_values_per_snr": 100}, r"analog_values_per_snr must be a multiple of 16 >= 16"),
    ({"analog_values_per_snr": 0}, r"analog_values_per_snr must be a multiple of 16 >= 16"),
    ({"analog_snr_db": [0, 90]}, r"analog_snr_db must hold SNRs in \[-20, 60\] dB"),
    ({"analog_snr_db": []}, r"analog_snr_db must not be empty"),
    ({"digital_mcs": [4, 29]}, r"digital_mcs must hold MCS indices in \[0, 28\]"),
    ({"digital_mcs": [4, 4]}, r"digital_mcs must not repeat"),
    ({"digital_snr_db": "x"}, r"digital_snr_db: snr range must be"),
    ({"seed": -1}, r"seed must be an int >= 0"),
    ({"fast": "yes"}, r"fast must be a bool"),
])
def test_a_bad_value_is_refused_before_any_folder(tmp_path: Path, settings: dict,
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuickstartConfig(**settings)
    with pytest.raises(ValueError, match=message):
        run_quickstart(out=tmp_path, progress=False, **settings)
    assert not any(tmp_path.iterdir())


def test_the_command_refuses_a_bad_value_before_any_folder(tmp_path: Path, capsys) -> None:
    assert main(["quickstart", "--fast", "--analog_values_per_snr", "100",
                 "--out", str(tmp_path)]) == 2
    assert "analog_values_per_snr must be a multiple of 16" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_summary_of_the_sections_run() -> None:
    """The summary's tables keep the columns and number formats the README quotes."""
    r = QuickstartResult(QuickstartConfig(fast=True))
    r.analog = [AnalogPoint("awgn", -5.0, 0.76, -1.19, -1.193, -1.187)]
    r.adaptation = [AdaptationPoint(0.0, None, 0.0, 20.0),
                    AdaptationPoint(10.0, "MCS10 64QAM R0.5", 52.36, 69.19)]
    text = quickstart_summary(r)
    assert "| channel | SNR (dB) | simulated | theory | link's noise_var |\n" \
           "|---|---|---|---|---|\n| awgn | -5 | -1.19 | -1.19 | -1.19 |\n" in text
    assert "| 0 | none | 0.0 | 20.0 |\n| 10 | MCS10 64QAM R0.5 | 52.4 | 69.2 |\n" in text
    assert "Digital link" not in text and "Split MoE" not in text
