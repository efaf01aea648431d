"""The one registry mechanism (phy.registry) and the canonical specs built on it."""

from __future__ import annotations

import dataclasses

import pytest

import phy
from phy import Registry, format_spec, parse_spec


@dataclasses.dataclass(frozen=True)
class _Cfg:
    a: int = 1
    b: str = "x"
    flag: bool = False
    c: float | None = None


def test_parse_spec_grammar() -> None:
    assert parse_spec("WLR:0.2:ratio:renormalize=false") == ("wlr", [0.2, "ratio"],
                                                              {"renormalize": False})
    assert parse_spec("x:none:3:k=1e-3") == ("x", [None, 3], {"k": 1e-3})
    for bad, msg in (("", "non-empty"), (":a", "no name"), ("a::b", "empty field"),
                     ("a:k=1:2", "positional value"), ("a:k=1:k=2", "repeated"),
                     ("a:1k=2", "bad or repeated")):
        with pytest.raises(ValueError, match=msg):
            parse_spec(bad, "test spec")


def test_format_spec_writes_only_what_differs_and_parses_back() -> None:
    assert format_spec("t", _Cfg()) == "t"
    assert format_spec("t", _Cfg(), positional=("a",), always=("a",)) == "t:1"
    assert format_spec("t", _Cfg(a=3), positional=("a", "b")) == "t:3"
    assert format_spec("t", _Cfg(b="y"), positional=("a", "b")) == "t:1:y"
    assert format_spec("t", _Cfg(flag=True, c=0.25), flags=("flag",)) == "t:flag:c=0.25"
    assert format_spec("t", _Cfg(flag=True)) == "t:flag=true"
    reg: Registry[_Cfg] = Registry("test")
    reg.register("t", _Cfg)
    for cfg in (_Cfg(), _Cfg(a=7), _Cfg(b="z", c=1.5), _Cfg(flag=True, c=None)):
        assert reg.build(format_spec("t", cfg, positional=("a", "b"))) == cfg
    with pytest.raises(ValueError, match="not a field"):
        format_spec("t", _Cfg(), positional=("z",))
    with pytest.raises(TypeError, match="dataclass instance"):
        format_spec("t", _Cfg)


def test_registry_build_forms_errors_and_families() -> None:
    loaded: list[int] = []
    reg: Registry[tuple] = Registry("widget", loader=lambda: loaded.append(1),
                                    hints={"gizmo": "install gizmos"})

    @reg.register("pair")
    def pair(a: int = 0, b: int = 0, *, scale: int = 1) -> tuple:
        return (a * scale, b * scale)

    reg.register("multi+", lambda variant, n=1: (variant, n))
    assert reg.build("pair:1:2:scale=3") == (3, 6)
    assert reg.build({"name": "PAIR", "a": 2, "scale": 2}) == (4, 0)
    assert reg.build("pair", 5, scale=2) == (10, 0)
    assert reg.build("multi+foo:n=4") == ("foo", 4) and "multi+bar" in reg
    assert reg.available() == ["multi+<name>", "pair"] and loaded == [1]
    reg.available()
    assert loaded == [1]  # the loader runs once
    with pytest.raises(ValueError, match=r"unknown widget 'gizmo' \(install gizmos\); "
                                         r"available: \['multi\+<name>', 'pair'\]"):
        reg.build("gizmo")
    with pytest.raises(ValueError, match="unknown widget 'multi\\+'"):
        reg.build("multi+")
    with pytest.raises(ValueError, match=r"sets \['scale'\], which are also passed"):
        reg.build("pair:scale=2", scale=3)
    with pytest.raises(ValueError, match="bad arguments in widget spec 'pair:1:2:3'"):
        reg.build("pair:1:2:3")
    with pytest.raises(ValueError, match="needs a 'name'"):
        reg.build({"a": 1})
    with pytest.raises(ValueError, match="already registered"):
        reg.register("pair", pair)
    reg.register("pair", lambda: (0, 0), overwrite=True)
    assert reg.build("pair") == (0, 0)
    for bad in ("Pair", "1x", "a b", ""):
        with pytest.raises(ValueError, match="widget name must be"):
            reg.register(bad, pair)
    with pytest.raises(TypeError, match="callable"):
        reg.register("x", 3)  # type: ignore[arg-type]
    assert reg.split("Pair:scale=2", {"b": 1}) == ("pair", {"scale": 2, "b": 1})
    assert reg.split({"name": "pair", "a": 3}) == ("pair", {"a": 3})
    with pytest.raises(ValueError, match="key=value"):
        reg.split("pair:1")
    with pytest.raises(ValueError, match=r"both set \['scale'\]"):
        reg.split("pair:scale=2", {"scale": 3})
    reg.unregister("pair")
    assert "pair" not in reg


def test_every_package_registers_through_the_one_mechanism() -> None:
    import cddm  # noqa: F401  (registers jscc+cddm and the analog+cddm denoiser)
    from cddm.nets import NETS
    from jscc.models.registry import CODECS
    from jscc.systems import SYSTEMS
    from wdmoe_link.edge import SCHEDULERS
    from wdmoe_link.policies import POLICIES
    from wdmoe_link.transports import DENOISERS, TRANSPORTS

    expected = {phy.CHANNELS: {"awgn", "rayleigh-block", "tdl-c"},
                CODECS: {"adjscc", "deepjscc", "swinjscc"},
                SYSTEMS: {"jscc", "jscc+cddm", "jpeg2000+ldpc"},
                NETS: {"unet", "unet-paper", "mlp"},
                TRANSPORTS: {"ideal", "digital", "analog", "analog+<name>"},
                DENOISERS: {"cddm"},
                POLICIES: {"topk", "wlr", "joint", "link-aware"},
                SCHEDULERS: {"gah-sweep", "ot-gah", "edf"}}
    for registry, names in expected.items():
        assert isinstance(registry, Registry)
        assert names <= set(registry.available()), registry.kind
    assert isinstance(phy.make_channel("rayleigh-block:14"), phy.RayleighFading)
    assert phy.make_channel("rayleigh-block:14").coherence == 14


def test_transport_and_policy_names_are_canonical_specs() -> None:
    """Every field changed on its own gives a name that parses back to an equal config, and
    defaults never appear in the name."""
    from wdmoe_link.link_aware import LinkAwareConfig
    from wdmoe_link.policies import JointConfig, WLRConfig, parse_policy
    from wdmoe_link.transports import DigitalConfig, parse_transport

    changes = {DigitalConfig: dict(dtype="int8", target_bler=0.01, max_transmissions=2,
                                   mcs_table="qam256", block_bits=512, group_size=32,
                                   num_iter=8, decoded=True),
               WLRConfig: dict(theta=0.5, rule="gated", weight="raw", renormalize=False),
               JointConfig: dict(theta=0.4, rule="ratio", weight="raw", renormalize=False,
                                 gamma=0.8, max_iter=3, tol=0.01),
               LinkAwareConfig: dict(theta=0.3, rule="ratio", weight="raw", base="topk",
                                     renormalize=False, dtypes="bf16,int8", analog=False,
                                     analog_min_snr_db=15.0, target_bler=0.05,
                                     max_transmissions=2)}
    build = {DigitalConfig: lambda **kw: parse_transport(
        format_spec("digital", DigitalConfig(**kw), positional=("dtype",))),
        WLRConfig: lambda **kw: parse_policy(format_spec("wlr", WLRConfig(**kw))),
        JointConfig: lambda **kw: parse_policy(format_spec("joint", JointConfig(**kw))),
        LinkAwareConfig: lambda **kw: parse_policy(
            format_spec("link-aware", LinkAwareConfig(**kw)))}
    for cls, fields in changes.items():
        default = build[cls]()
        for key, value in fields.items():
            obj = build[cls](**{key: value})
            assert obj.name != default.name, (cls.__name__, key)
            again = parse_transport(obj.name) if cls is DigitalConfig else \
                parse_policy(obj.name)
            assert again.config == obj.config and again.name == obj.name, (cls.__name__, key)
    assert parse_transport("digital").name == "digital:bf16"
    assert parse_transport("ideal:16").name == "ideal"
    assert parse_policy("wlr").name == "wlr:0.2:share:renorm"
    assert parse_policy("joint:gamma=0.8").name == "joint:weight=renorm:gamma=0.8"


def test_importing_wdmoe_link_leaves_cddm_and_jscc_unloaded() -> None:
    """The analog+cddm denoiser is registered at import, but cddm (and jscc, CompressAI below
    it) load only when one is built: the split-MoE package stands on phy alone."""
    import subprocess
    import sys

    code = ("import sys, wdmoe_link; from wdmoe_link import available_denoisers; "
            "assert 'cddm' in available_denoisers(); "
            "print(sorted(m for m in ('cddm', 'jscc', 'compressai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    assert out == "[]"
