"""lm-evaluation-harness end to end on the shipped tiny model and its offline tasks."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")

from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from wdmoe_link.byte_tokenizer import HFByteTokenizer
from wdmoe_link.harness import TASKS_DIR, WDMoELM


def _run(model_args: str, limit: int = 12) -> dict:
    return simple_evaluate(model="wdmoe", model_args=model_args,
                           tasks=["wdmoe_arith", "wdmoe_arith_mc"],
                           task_manager=TaskManager(include_path=str(TASKS_DIR)),
                           limit=limit, device="cpu", log_samples=False)


def test_byte_tokenizer_round_trips_and_frames_with_bos() -> None:
    t = HFByteTokenizer()
    assert t("12+3=").input_ids == [256, 49, 50, 43, 51, 61]
    assert t.decode(t("héllo\n").input_ids, skip_special_tokens=True) == "héllo\n"
    assert t.decode([t.bos_token_id]) == "<s>"
    assert (t.eos_token_id, t.pad_token_id, t.vocab_size) == (257, 258, 259)


@pytest.mark.filterwarnings("ignore")
def test_harness_scores_the_split_model_and_reports_the_links() -> None:
    ideal = _run("pretrained=tiny,policy=topk,transport=ideal")
    assert ideal["results"]["wdmoe_arith"]["exact_match,none"] == 1.0
    assert ideal["results"]["wdmoe_arith_mc"]["acc,none"] == 1.0
    link = ideal["config"]["wdmoe_link"]
    assert link["transport"] == "ideal" and link["experts_lost_fraction"] == 0.0
    assert link["num_decode_steps"] > 0 and link["num_prefill_steps"] > 0
    # hidden 64 in bf16 per (token, expert): 1024 bits each way, top-2 over 4 MoE layers
    assert link["bits_dl_per_token"] == pytest.approx(8 * 1024)
    # a bad link: int4 payloads at 0 dB lose experts, and the harness sees it
    noisy = _run("pretrained=tiny,policy=topk,transport=digital:int4,snr_db=0")
    lost = noisy["config"]["wdmoe_link"]["experts_lost_fraction"]
    assert 0.0 < lost < 0.5
    assert noisy["results"]["wdmoe_arith"]["exact_match,none"] < 1.0


def test_harness_model_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="dtype must be a torch dtype name"):
        WDMoELM(pretrained="tiny", dtype="float33")
    with pytest.raises(ValueError, match="link_snr_db must lie in"):
        WDMoELM(pretrained="tiny", snr_db=-500)
