"""Every quantization mode is one pure config: it round-trips, it names existing handlers, and QuantMode reads the registry."""

from __future__ import annotations

import json

import pytest

from bortnas.modes import QuantConfig, QuantMode, get_config
from bortnas.modes.base import register


@pytest.mark.parametrize("mode", list(QuantMode), ids=str)
def test_every_config_round_trips_through_json(mode: QuantMode) -> None:
    config = mode.config
    assert QuantConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.name == mode.value and get_config(mode.value) is config


@pytest.mark.parametrize("mode", list(QuantMode), ids=str)
def test_every_quantized_mode_has_a_module_handler_and_a_codec(mode: QuantMode) -> None:
    from bortnas.quant.modules import LINEAR_HANDLERS
    from bortnas.quant.pack import CODECS

    config = mode.config
    if config.quantized:
        assert config.linear in LINEAR_HANDLERS and config.packing in CODECS
    else:
        assert (config.linear, config.packing, config.attention) == ("none", "none", "softmax")


def test_quant_mode_is_an_interned_string_of_a_registered_mode() -> None:
    assert [m.value for m in QuantMode] == ["fp32", "int8", "bitnet158", "bit_w1a1", "bit_w1a2", "bit_w1a4", "bibert"]
    assert QuantMode("bibert") is QuantMode.BIBERT and QuantMode.BIBERT == "bibert" and repr(QuantMode.FP32) == "QuantMode('fp32')"
    assert QuantMode.BIBERT.config.dmd_weight == 1.0 and QuantMode.BIT_W1A2.config.activation_bits == 2
    with pytest.raises(ValueError, match="'int3' is not a quantization mode"):
        QuantMode("int3")


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(QuantConfig(name="fp32"))
    with pytest.raises(ValueError, match="needs a packing|a linear quantizer"):
        QuantConfig(name="half", weight_bits=16)
    with pytest.raises(ValueError, match="unknown QuantConfig keys"):
        QuantConfig.from_dict({"name": "x", "bits": 3})
    with pytest.raises(ValueError, match="int8 kernel or is simulated"):
        QuantConfig(name="half", weight_bits=8, linear="int8_absmax", packing="int8")
    with pytest.raises(ValueError, match="newer than this bortnas"):
        QuantConfig.from_dict({"name": "x", "version": 2})


def test_kernels_say_which_latencies_are_real() -> None:
    kernels = {m.value: m.config.kernel for m in QuantMode}
    assert kernels == {
        "fp32": "float",
        "int8": "int8",
        "bitnet158": "int8",
        "bit_w1a1": "simulated",
        "bit_w1a2": "simulated",
        "bit_w1a4": "simulated",
        "bibert": "simulated",
    }
    assert [m.value for m in QuantMode if m.config.simulated] == ["bit_w1a1", "bit_w1a2", "bit_w1a4", "bibert"]
    # a config written before kernels were recorded reads as it ran then: quantized meant simulated
    old = {k: v for k, v in QuantMode.BITNET158.config.to_dict().items() if k != "kernel"}
    assert QuantConfig.from_dict({**old, "name": "old_ternary"}).kernel == "simulated"
    assert QuantConfig.from_dict({"name": "old_fp"}).kernel == "float"
