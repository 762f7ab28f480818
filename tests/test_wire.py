"""The data format between the student's process and the grader: every value round-trips exactly,
and the decoder refuses, with WireError and nothing else, whatever is not a well-formed message."""
from __future__ import annotations

import math
import random
import socket
from collections import OrderedDict

import numpy as np
import pytest
import torch

from dlcourse import wire


def roundtrip(value):
    header, buffers = wire.encode(value)
    message, views = wire.unpack(wire.pack({"v": header}, buffers)[12:])
    return wire.decode(message["v"], views)


VALUES = [None, True, False, 0, -7, 2 ** 70, 1.5, float("inf"), -float("inf"), "text", "", "ü\n\t", b"\x00\xff",
          [1, [2, [3]]], (1, "a", None), {"a": 1, 2: "b", (1, 2): [3]}, {1, 2}, frozenset({"x"}),
          OrderedDict([("b", 1), ("a", 2)]), slice(1, None, 2), range(0, 10, 3), Ellipsis, 1 + 2j,
          np.arange(12, dtype=np.float32).reshape(3, 4), np.array([True, False]), np.zeros((0, 3)),
          np.array(3.5), np.float64(2.5), np.int32(-3), np.arange(6).reshape(2, 3).T,
          torch.arange(6, dtype=torch.float64).reshape(2, 3), torch.tensor(1.0), torch.zeros(0, 2),
          torch.tensor([1, 2], dtype=torch.bfloat16), torch.tensor([True]), torch.float16, torch.device("cpu"),
          torch.Size([2, 3])]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip_with_their_exact_type(value):
    """Each kind of data comes back equal and of the same type."""
    got = roundtrip(value)
    assert type(got) is type(value)
    if isinstance(value, np.ndarray):
        assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value)
    elif isinstance(value, torch.Tensor):
        assert got.dtype == value.dtype and got.shape == value.shape and torch.equal(got, value)
    elif isinstance(value, np.generic):
        assert got == value and got.dtype == value.dtype
    else:
        assert got == value or (isinstance(value, float) and math.isnan(value))


def test_nan_and_tensor_flags_survive():
    """NaN, a tensor's requires_grad and a Parameter's type cross; the autograd graph does not."""
    assert math.isnan(roundtrip(float("nan")))
    x = torch.ones(2, requires_grad=True) * 3
    got = roundtrip(x)
    assert got.requires_grad and got.grad_fn is None and torch.equal(got.detach(), x.detach())
    p = roundtrip(torch.nn.Parameter(torch.ones(3)))
    assert isinstance(p, torch.nn.Parameter) and p.requires_grad


def test_non_data_needs_a_handle():
    """A value that is not data cannot be sent without a handle function; with one, it becomes a tag."""
    with pytest.raises(wire.WireError):
        wire.encode(object())
    header, _ = wire.encode([lambda: 0], handle=lambda obj: {"$": "ref", "id": 7})
    assert header == [{"$": "ref", "id": 7}]


def test_unknown_tags_and_dtypes_are_refused():
    """Tags, dtypes, shapes and buffers that do not fit are errors."""
    bad = [{"$": "pickle", "v": "x"}, {"$": "ndarray", "dtype": "|O", "shape": [1], "b": 0},
           {"$": "ndarray", "dtype": "<f8", "shape": [3], "b": 0}, {"$": "tensor", "dtype": "float64", "shape": [-1], "b": 0},
           {"$": "ndarray", "dtype": "<f8", "shape": [1], "b": 5}, {"notag": 1}, {"$": "range", "v": [0, 1, 0]},
           {"$": "dict", "k": [[1]], "v": [1]}, {"$": "bigint", "v": "1" * 5000}]
    for value in bad:
        with pytest.raises(wire.WireError):
            wire.decode(value, [memoryview(b"\x00" * 8)])


def test_caps_on_depth_items_and_size():
    """Deep nesting, too many items and oversize messages are refused before they cost memory."""
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep)
    with pytest.raises(wire.WireError):
        wire.decode([0] * (wire.MAX_ITEMS + 1), [])
    a, b = socket.socketpair()
    try:
        a.sendall(wire._HEAD.pack(wire.MAGIC, 10 ** 12))
        with pytest.raises(wire.WireError):
            wire.recv(b, max_message=1024)
    finally:
        a.close(), b.close()


def test_fuzzed_frames_raise_only_wire_errors():
    """Random corruption of valid frames ends in WireError (or a value), never another exception."""
    rng = random.Random(0)
    header, buffers = wire.encode([np.arange(5.0), {"k": (1, "v")}, torch.ones(2, 2), "s", 3])
    frame = bytearray(wire.pack({"v": header}, buffers)[12:])
    for trial in range(3000):
        corrupt = bytearray(frame)
        for _ in range(rng.randint(1, 6)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        if trial % 7 == 0:
            corrupt = corrupt[:rng.randrange(len(corrupt))]
        try:
            message, views = wire.unpack(bytes(corrupt))
            wire.decode(message.get("v"), views)
        except wire.WireError:
            pass


def test_a_one_element_view_with_a_large_stride_crosses():
    """x[:, 0, 0, 0] of a batch of one image is contiguous but has stride 64: it crosses as its one value."""
    import torch

    x = (torch.arange(64.0).reshape(1, 1, 8, 8) + 5)[:, 0, 0, 0].clone()
    assert x.stride() == (64,)
    back = wire.decode(*wire.encode(x))
    assert back.shape == (1,) and back.item() == 5.0
