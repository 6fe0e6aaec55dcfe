"""LayerSpec: output size, validation, JSON round trip and load_layer."""

import dataclasses
import json

import pytest

from rowstat.gen.errors import ConfigError, LayerError
from rowstat.gen.layer import LayerSpec, load_layer

BASE = dict(N=1, C=4, H=8, W=8, M=6, R=3, S=3)


def spec(**changes):
    return LayerSpec(**(BASE | changes))


def assert_one_line(exc, *parts):
    text = str(exc)
    assert "\n" not in text, text
    for part in parts:
        assert str(part) in text, (part, text)


# --- shapes --------------------------------------------------------------------------------

def test_defaults():
    layer = spec()
    assert (layer.stride, layer.padding, layer.groups) == (1, 0, 1)
    assert layer.relu is False and layer.shift is None


@pytest.mark.parametrize("H, R, stride, padding, E", [
    (8, 3, 1, 0, 6), (8, 3, 1, 1, 8), (8, 3, 2, 0, 3), (8, 3, 2, 1, 4), (8, 3, 4, 0, 2),
    (8, 8, 1, 0, 1), (8, 8, 3, 0, 1), (1, 1, 1, 0, 1), (1, 3, 1, 1, 1), (5, 1, 4, 0, 2),
    (227, 11, 4, 0, 55), (27, 5, 1, 2, 27), (13, 3, 1, 1, 13), (224, 3, 2, 1, 112),
    (7, 5, 3, 2, 3),
])
def test_E_and_F(H, R, stride, padding, E):
    assert E == (H + 2 * padding - R) // stride + 1
    layer = LayerSpec(N=1, C=1, H=H, W=H, M=1, R=R, S=R, stride=stride, padding=padding)
    assert (layer.E, layer.F) == (E, E)
    # E follows H and R, F follows W and S, independently.
    tall = LayerSpec(N=1, C=1, H=H, W=R, M=1, R=R, S=R, stride=stride, padding=padding)
    assert tall.E == E and tall.F == (R + 2 * padding - R) // stride + 1


def test_rectangular():
    layer = LayerSpec(N=2, C=3, H=10, W=6, M=4, R=3, S=1, stride=2, padding=1)
    assert (layer.E, layer.F) == (5, 4)
    assert layer.ifmap_shape == (2, 3, 10, 6)
    assert layer.weight_shape == (4, 3, 3, 1)
    assert layer.ofmap_shape == (2, 4, 5, 4)


def test_groups_shapes_and_macs():
    layer = spec(N=2, C=8, M=12, groups=4, padding=1)
    assert (layer.C_per_group, layer.M_per_group) == (2, 3)
    assert layer.weight_shape == (12, 2, 3, 3)
    assert layer.ofmap_shape == (2, 12, 8, 8)
    assert layer.macs == 2 * 12 * 8 * 8 * 2 * 3 * 3


def test_alexnet_conv1_macs():
    conv1 = LayerSpec(N=4, C=3, H=227, W=227, M=96, R=11, S=11, stride=4)
    assert (conv1.E, conv1.F) == (55, 55)
    assert conv1.macs == 4 * 105_415_200   # 422 M MACs at batch 4 (REFERENCE.md)


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["N", "C", "H", "W", "M", "R", "S", "stride", "groups"])
@pytest.mark.parametrize("value", [0, -1, True, 1.0, "2", None])
def test_positive_integers(key, value):
    with pytest.raises(LayerError) as info:
        spec(**{key: value})
    assert (info.value.key, info.value.value) == (key, value)
    assert_one_line(info.value, key, repr(value), "an integer >= 1")


@pytest.mark.parametrize("value", [-1, True, False, 0.0, "0", None])
def test_padding(value):
    with pytest.raises(LayerError) as info:
        spec(padding=value)
    assert info.value.key == "padding"
    assert_one_line(info.value, "padding", repr(value), "an integer >= 0")


def test_N_true_is_not_one():
    with pytest.raises(LayerError) as info:
        spec(N=True)
    assert "N" in str(info.value) and "True" in str(info.value)


@pytest.mark.parametrize("value", [1, 0, "true", None, 1.0])
def test_relu_must_be_bool(value):
    with pytest.raises(LayerError) as info:
        spec(relu=value)
    assert info.value.key == "relu"
    assert_one_line(info.value, "relu", repr(value), "true or false")


@pytest.mark.parametrize("value", [0, 1, 8, 62])
def test_shift_accepted(value):
    assert spec(shift=value).shift == value


@pytest.mark.parametrize("value", [-1, 63, True, False, 2.0, "3"])
def test_shift_rejected(value):
    with pytest.raises(LayerError) as info:
        spec(shift=value)
    assert info.value.key == "shift"
    assert_one_line(info.value, "shift", repr(value), "an integer from 0 to 62")


@pytest.mark.parametrize("C, M, groups, names", [
    (4, 6, 3, "C=4"), (6, 4, 3, "M=4"), (4, 4, 8, "C=4"), (6, 6, 4, "C=6"),
])
def test_groups_must_divide_C_and_M(C, M, groups, names):
    with pytest.raises(LayerError) as info:
        spec(C=C, M=M, groups=groups)
    assert info.value.key == "groups"
    assert_one_line(info.value, "groups", repr(groups), "a divisor of", names)


@pytest.mark.parametrize("C, M, groups", [(4, 6, 2), (6, 6, 6), (4, 8, 4), (1, 5, 1)])
def test_groups_accepted(C, M, groups):
    assert spec(C=C, M=M, groups=groups).groups == groups


def test_filter_taller_than_padded_input():
    with pytest.raises(LayerError) as info:
        spec(H=2, R=3)
    assert info.value.key == "R"
    assert_one_line(info.value, "R", "3", "at most H + 2*padding = 2")
    assert spec(H=2, R=3, padding=1).E == 2


def test_filter_wider_than_padded_input():
    with pytest.raises(LayerError) as info:
        spec(W=4, S=7, padding=1)
    assert info.value.key == "S"
    assert_one_line(info.value, "S", "7", "at most W + 2*padding = 6")


def test_stride_never_makes_E_zero():
    # Any stride is allowed: a filter that fits gives at least one output.
    assert spec(H=3, W=3, R=3, S=3, stride=7).ofmap_shape[2:] == (1, 1)


def test_layer_error_is_a_config_error():
    with pytest.raises(ConfigError):
        spec(N=0)
    with pytest.raises(ValueError):
        spec(N=0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec().N = 2


# --- dict and JSON -------------------------------------------------------------------------

ROUND_TRIP = [
    spec(),
    spec(N=3, stride=2, padding=1, groups=2, relu=True, shift=7),
    spec(shift=0),
    LayerSpec(N=4, C=3, H=227, W=227, M=96, R=11, S=11, stride=4),
]


@pytest.mark.parametrize("layer", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_json_round_trip(layer, tmp_path):
    text = layer.to_json()
    assert text.endswith("\n")
    data = json.loads(text)
    assert data == layer.to_dict()
    assert LayerSpec.from_dict(data) == layer
    path = tmp_path / "layer.json"
    path.write_text(text)
    loaded = load_layer(path)
    assert loaded == layer
    assert type(loaded.relu) is bool and type(loaded.N) is int
    assert load_layer(str(path)) == layer


def test_json_null_shift_and_defaults():
    layer = LayerSpec.from_dict(json.loads(json.dumps(BASE | {"shift": None})))
    assert layer.shift is None
    assert LayerSpec.from_dict(BASE) == spec()


def test_from_dict_unknown_key():
    with pytest.raises(LayerError) as info:
        LayerSpec.from_dict(BASE | {"K": 3})
    assert info.value.key == "K"
    assert_one_line(info.value, "unknown key", "K", "3", "stride", "padding")


@pytest.mark.parametrize("key", ["N", "C", "H", "W", "M", "R", "S"])
def test_from_dict_missing_key(key):
    data = {k: v for k, v in BASE.items() if k != key}
    with pytest.raises(LayerError) as info:
        LayerSpec.from_dict(data)
    assert info.value.key == key
    assert_one_line(info.value, "missing key", key, "required")


@pytest.mark.parametrize("data", [[1, 2], "layer", 3, None])
def test_from_dict_needs_an_object(data):
    with pytest.raises(LayerError) as info:
        LayerSpec.from_dict(data)
    assert_one_line(info.value, "layer", "a JSON object")


@pytest.mark.parametrize("key, value", [
    ("N", True), ("relu", 1), ("relu", "yes"), ("shift", True), ("C", 4.0), ("H", "8"),
])
def test_from_dict_types(key, value):
    with pytest.raises(LayerError) as info:
        LayerSpec.from_dict(BASE | {key: value})
    assert info.value.key == key


def test_load_layer_json_true_is_not_an_integer(tmp_path):
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(BASE | {"N": True}))
    with pytest.raises(LayerError) as info:
        load_layer(path)
    assert (info.value.key, info.value.value) == ("N", True)


def test_load_layer_missing_file(tmp_path):
    path = tmp_path / "none.json"
    with pytest.raises(LayerError) as info:
        load_layer(path)
    assert_one_line(info.value, "missing file", "--layer", str(path), "an existing JSON file")


def test_load_layer_bad_json(tmp_path):
    path = tmp_path / "layer.json"
    path.write_text('{"N": 1,\n "C": }\n')
    with pytest.raises(LayerError) as info:
        load_layer(path)
    assert_one_line(info.value, "--layer", str(path), "valid JSON", "line 2")


def test_load_layer_not_an_object(tmp_path):
    path = tmp_path / "layer.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(LayerError) as info:
        load_layer(path)
    assert info.value.key == "layer"


def test_load_layer_directory(tmp_path):
    with pytest.raises(LayerError) as info:
        load_layer(tmp_path)
    assert_one_line(info.value, "--layer", str(tmp_path), "readable JSON file")


def test_load_layer_non_utf8(tmp_path):
    path = tmp_path / "layer.json"
    path.write_bytes(b'{"N": 1} \xff')
    with pytest.raises(LayerError) as info:
        load_layer(path)
    assert_one_line(info.value, "--layer", "UTF-8")
