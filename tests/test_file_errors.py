"""Library errors on damaged files are re-raised at the boundary, naming the file and what
was expected (never a safetensors, pickle or JSON traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from jscc.checkpoints import CheckpointError, read_safetensors, read_torch_file


class _Opaque:
    pass


def test_read_torch_file_and_safetensors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(3)}, good)
    assert torch.equal(read_torch_file(good, "a test file")["w"], torch.arange(3))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file" * 8)
    for path, msg in ((tmp_path / "missing.pt", "does not exist"),
                      (garbage, "is not readable")):
        with pytest.raises(CheckpointError, match=f"{path.name}.*{msg}.*expected a test file"
                           if msg == "is not readable" else f"{path.name} {msg}"):
            read_torch_file(path, "test file")

    evil = tmp_path / "object.pt"
    torch.save({"x": _Opaque()}, evil)  # an arbitrary object: weights_only refuses it
    with pytest.raises(CheckpointError, match=r"object\.pt is not readable"):
        read_torch_file(evil, "a test file")

    st = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(2)}, str(st))
    assert torch.equal(read_safetensors(st, "weights")["a"], torch.ones(2))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(st.read_bytes()[:20])
    with pytest.raises(CheckpointError, match=r"broken\.safetensors is not a readable "
                                              r"safetensors file.*expected the weights"):
        read_safetensors(broken, "the weights")
    with pytest.raises(CheckpointError, match=r"nope\.safetensors does not exist"):
        read_safetensors(tmp_path / "nope.safetensors", "weights")


def test_damaged_hidden_state_cddm_names_its_file(tmp_path: Path) -> None:
    from wdmoe_link.denoise import META, WEIGHTS, load_hidden_cddm
    from wdmoe_link.tiny import TINY_DIR

    d = tmp_path / "cddm"
    d.mkdir()
    for name in (META, WEIGHTS):
        shutil.copy(Path(TINY_DIR) / name, d / name)
    load_hidden_cddm(d)  # intact copy loads
    (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"{WEIGHTS} is not a readable safetensors"):
        load_hidden_cddm(d)
    shutil.copy(Path(TINY_DIR) / WEIGHTS, d / WEIGHTS)
    meta = json.loads((d / META).read_text())
    meta["net"]["width"] = int(meta["net"]["width"]) * 2
    (d / META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"{WEIGHTS} does not fit the network"):
        load_hidden_cddm(d)
    (d / META).write_text("{not json")
    with pytest.raises(ValueError, match=f"{META} is not a hidden-state CDDM description"):
        load_hidden_cddm(d)


def test_damaged_ladder_file_names_itself(tmp_path: Path) -> None:
    from jscc.baselines.learned import load_ladder

    bad = tmp_path / "ladder.pt"
    bad.write_text("hello")
    with pytest.raises(CheckpointError, match=r"ladder\.pt is not readable.*hyperprior ladder"):
        load_ladder(bad)
