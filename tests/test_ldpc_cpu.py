"""The compiled CPU LDPC decoder against Sionna's: structure, decisions, BLER."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper

import phy
from phy.ldpc import CPULDPC5GDecoder, qc_structure

#: (k with CRC, n, Qm): BG2 short, BG2 punctured, BG1 high rate, BG1 with filler bits.
CODES = [(100, 300, 2), (1048, 2096, 4), (8448, 9600, 8), (4000, 6000, 6)]


@pytest.mark.parametrize(("k", "n", "qm"), CODES)
def test_qc_structure_rebuilds_sionnas_parity_check_matrix(k: int, n: int, qm: int) -> None:
    enc = LDPC5GEncoder(k, n, num_bits_per_symbol=qm)
    dec = CPULDPC5GDecoder(enc)
    z = enc.z
    row_ptr, cols, shifts = qc_structure(dec.pcm, z)
    rows, cs = [], []
    for r in range(len(row_ptr) - 1):
        for e in range(row_ptr[r], row_ptr[r + 1]):
            i = np.arange(z)
            rows.append(r * z + i)
            cs.append(cols[e] * z + (i + shifts[e]) % z)
    h = sp.csr_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows),
                                                             np.concatenate(cs))),
                      shape=dec.pcm.shape)
    assert (h != sp.csr_matrix(dec.pcm)).nnz == 0


def test_qc_structure_refuses_a_matrix_that_is_not_quasi_cyclic() -> None:
    h = np.zeros((4, 8))
    h[0, 0] = h[1, 0] = 1  # two ones in one column of a 2x2 block
    with pytest.raises(ValueError, match="quasi-cyclic"):
        qc_structure(h, 2)


@pytest.mark.parametrize("rule", ["minsum", "offset-minsum", "boxplus"])
@pytest.mark.parametrize(("k", "n", "qm"), CODES)
def test_noiseless_codewords_decode_to_their_information_bits(rule: str, k: int, n: int,
                                                               qm: int) -> None:
    torch.manual_seed(0)
    enc = LDPC5GEncoder(k, n, num_bits_per_symbol=qm)
    dec = CPULDPC5GDecoder(enc, rule)
    u = torch.randint(0, 2, (5, k)).float()
    llr = 8.0 * (2.0 * enc(u) - 1.0)  # Sionna logits: positive means 1
    assert torch.equal(dec(llr), u)
    # the punctured 2Z systematic bits start at LLR 0: the first iteration fills them in and
    # ends on the codeword, which stops the block (no confirming iteration)
    assert torch.all(dec.last_iterations == 1)
    soft = CPULDPC5GDecoder(enc, rule, hard_out=False, return_infobits=False)(llr)
    assert torch.equal((soft > 0).float(), enc(u))


def test_harq_redundancy_versions_decode_jointly() -> None:
    torch.manual_seed(1)
    enc = LDPC5GEncoder(1048, 1400, num_bits_per_symbol=2)
    dec = CPULDPC5GDecoder(enc, harq_mode=True)
    u = torch.randint(0, 2, (4, 1048)).float()
    c = enc(u, rv=[0, 2])
    llr = 6.0 * (2.0 * c - 1.0)
    llr[:, 1] = 0.0  # the second redundancy version carries nothing: RV 0 alone decodes
    assert torch.equal(dec(llr, rv=[0, 2]), u)


def test_bad_arguments_are_refused() -> None:
    enc = LDPC5GEncoder(100, 300)
    with pytest.raises(ValueError, match="cn_update"):
        CPULDPC5GDecoder(enc, "tanh")
    with pytest.raises(ValueError, match="scale"):
        CPULDPC5GDecoder(enc, scale=1.5)
    with pytest.raises(ValueError, match="msg_v2c"):
        CPULDPC5GDecoder(enc)(torch.zeros(2, 300), msg_v2c=torch.zeros(2, 10))
    with pytest.raises(ValueError, match="decoder must be one of"):
        phy.DigitalLink(phy.AWGN(), 5, decoder="gpu")
    with pytest.raises(ValueError, match=r"cn_update \(decoder='cpu'\)"):
        phy.DigitalLink(phy.AWGN(), 5, decoder="cpu", cn_update="boxplus-phi")


def test_auto_picks_the_cpu_decoder_on_a_cpu_device() -> None:
    assert phy.DigitalLink(phy.AWGN(), 5).decoder == "cpu"
    assert phy.DigitalLink(phy.AWGN(), 5, decoder="sionna").cn_update == "boxplus-phi"


def test_layered_offset_minsum_agrees_with_sionnas_layered_offset_minsum() -> None:
    """Same rule, same layered schedule, same channel LLRs: the block outcomes must agree on
    nearly every block (message clipping differs in detail: Sionna clips variable-to-check
    messages, the kernel clips check-to-variable messages). Tolerance: 3 of 300 blocks."""
    torch.manual_seed(2)
    enc = LDPC5GEncoder(1048, 2096, num_bits_per_symbol=2)
    ours = CPULDPC5GDecoder(enc, "offset-minsum", num_iter=10, early_stop=False)
    ref = LDPC5GDecoder(enc, cn_update="offset-minsum", cn_schedule="layered", num_iter=10)
    u = torch.randint(0, 2, (300, 1048)).float()
    out = phy.AWGN()(Mapper("qam", 2)(enc(u)), 1.3)
    llr = Demapper("app", "qam", 2)(out.y, out.no)
    fail_ours = (ours(llr) != u).any(1)
    fail_ref = (ref(llr) != u).any(1)
    assert 0.05 < fail_ref.float().mean() < 0.95  # the waterfall, where decoders differ
    assert int((fail_ours != fail_ref).sum()) <= 3


def _blocks_failed(link: phy.DigitalLink, bits: torch.Tensor, snr_db: float) -> int:
    phy.set_seed(7)
    return int((~link.send_bits(bits, snr_db).ok).sum())


def _waterfall_snr_db(link: phy.DigitalLink, bits: torch.Tensor, lo: float, hi: float) -> float:
    """SNR (dB) where ``link`` loses about half of ``bits``' blocks (bisection, 0.05 dB)."""
    for _ in range(10):
        mid = 0.5 * (lo + hi)
        if _blocks_failed(link, bits, mid) > bits.shape[0] // 2:
            lo = mid
        else:
            hi = mid
        if hi - lo < 0.05:
            break
    return 0.5 * (lo + hi)


# (table, MCS index): QPSK, 16QAM, 64QAM and 256QAM.
BLER_MCS = [("qam64", 5), ("qam64", 13), ("qam64", 22), ("qam256", 24)]


def _check_bler_equivalence(table: str, mcs: int, k: int, channel: str, blocks: int) -> None:
    """The cpu decoder at SNR s fails no more often than Sionna's at s - 0.25 dB, on the same
    blocks and the same (unit) noise, at the SNR where the cpu decoder loses half of them."""
    ch = phy.make_channel(channel)
    cpu = phy.DigitalLink(ch, phy.MCS.from_index(mcs, table=table), block_bits=k,
                          decoder="cpu")
    ref = phy.DigitalLink(ch, phy.MCS.from_index(mcs, table=table), block_bits=k,
                          decoder="sionna")
    bits = torch.randint(0, 2, (blocks, k), generator=torch.Generator().manual_seed(3)).float()
    s = _waterfall_snr_db(cpu, bits, -5.0, 40.0)
    failed_cpu = _blocks_failed(cpu, bits, s)
    failed_ref = _blocks_failed(ref, bits, s - 0.25)
    assert failed_cpu <= failed_ref, (table, mcs, k, channel, s, failed_cpu, failed_ref)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
@pytest.mark.parametrize(("table", "mcs"), BLER_MCS)
def test_bler_equivalence_k1024(table: str, mcs: int, channel: str) -> None:
    _check_bler_equivalence(table, mcs, 1024, channel, blocks=120)


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
@pytest.mark.parametrize(("table", "mcs"), BLER_MCS)
def test_bler_equivalence_k8448(table: str, mcs: int, channel: str) -> None:
    _check_bler_equivalence(table, mcs, 8424, channel, blocks=60)
