"""The data format between a student's process and the grader: values only, never code or pickles.

Grading runs a student's answer cells in a sandboxed process and the tests in a trusted one; this
module is how a value crosses between them. A message is one frame::

    b"DLW1" | uint64 length | uint32 header length | header (UTF-8 JSON) | buffer 0 | buffer 1 | ...

The header is JSON in which every value is tagged, so nothing in it can be mistaken for anything
else: JSON's own null, booleans, numbers and strings stand for themselves; every other value is an
object ``{"$": TAG, ...}``; arrays and tensors keep their bytes in the buffers that follow.

What crosses, and as what (exact types: a subclass is sent as its base, or as a handle):

=====================================  ==============================================================
None, bool, int, float, str            themselves (NaN and infinities included)
bytes, bytearray                       bytes
list, tuple, dict, set, frozenset      containers of the above (any hashable data as dict keys)
collections.OrderedDict                an OrderedDict (a ``state_dict`` keeps its order)
numpy arrays and numpy scalars         dtype (numbers and booleans only), shape, bytes
torch tensors (nn.Parameter too)       dtype, shape, bytes, device, requires_grad; no autograd graph
torch.dtype, torch.device, torch.Size  themselves
slice, range, Ellipsis                 themselves
anything else                          a *handle*: a number the sender keeps the object under
=====================================  ==============================================================

The decoder checks everything it reads: the frame's length against a cap, every tag, dtype, shape
and buffer length, nesting depth and the number of items, and raises :class:`WireError` on the
first thing wrong. Handles, callbacks and named references are decoded by the ``refs`` function
the caller supplies; without one they are an error.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np

MAGIC = b"DLW1"
_HEAD = struct.Struct("!4sQ")       # magic, length of the rest
_JSON_LEN = struct.Struct("!I")
#: the largest message either side accepts (bytes); COURSE_WIRE_MAX_MB overrides it
MAX_MESSAGE = int(float(os.environ.get("COURSE_WIRE_MAX_MB", "256")) * 1024 * 1024)
MAX_HEADER = 32 * 1024 * 1024      # the JSON part of one message
MAX_DEPTH = 64                      # nesting of containers
MAX_ITEMS = 2_000_000               # container items in one message
MAX_DIMS = 32

#: numpy dtypes that may cross (by their ``.str``, which names byte order and size)
NUMPY_DTYPES = {np.dtype(t).str: np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128)}
TORCH_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
                "float64", "complex64", "complex128", "uint16", "uint32", "uint64")


class WireError(ValueError):
    """A message that breaks the format: too big, malformed, or naming a type that may not cross."""


def _torch():
    """torch, if the process has it (never imported here just for that)."""
    return sys.modules.get("torch")


# -- encoding ------------------------------------------------------------------------------------
class Encoder:
    """Turns one value into (header, buffers). ``handle(obj)`` returns the tagged dict for anything
    that is not data (a handle, a callback, a named reference); without it such values raise."""

    def __init__(self, handle=None):
        self.handle = handle
        self.buffers: list[bytes] = []
        self.items = 0

    def _buffer(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def encode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise WireError(f"value has more than {MAX_ITEMS} items")
        t = type(value)
        if value is None or t is bool or t is str:
            return value
        if t is int:
            return value if abs(value) < 2 ** 63 else {"$": "bigint", "v": str(value)}
        if t is float:
            return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
        if t is list:
            return [self.encode(v, depth + 1) for v in value]
        if t is tuple:
            return {"$": "tuple", "v": [self.encode(v, depth + 1) for v in value]}
        if t is dict or t is OrderedDict:
            return {"$": "dict" if t is dict else "odict",
                    "k": [self.encode(k, depth + 1) for k in value], "v": [self.encode(v, depth + 1) for v in value.values()]}
        if t is set or t is frozenset:
            return {"$": t.__name__, "v": [self.encode(v, depth + 1) for v in value]}
        if t is bytes or t is bytearray:
            return {"$": "bytes", "b": self._buffer(bytes(value))}
        if isinstance(value, np.ndarray) and not isinstance(value, np.ma.MaskedArray):
            if value.dtype.str in NUMPY_DTYPES or value.dtype.newbyteorder("=").str in NUMPY_DTYPES:
                a = value if value.flags.c_contiguous else value.copy(order="C")
                return {"$": "ndarray", "dtype": a.dtype.str, "shape": list(a.shape), "b": self._buffer(a.tobytes())}
        elif isinstance(value, np.generic) and value.dtype.str in NUMPY_DTYPES:
            return {"$": "npscalar", "dtype": value.dtype.str, "b": self._buffer(value.tobytes())}
        torch = _torch()
        if torch is not None:
            if isinstance(value, torch.Tensor):
                return self._tensor(torch, value)
            if t is torch.dtype:
                return {"$": "torch.dtype", "v": str(value).replace("torch.", "")}
            if t is torch.device:
                return {"$": "torch.device", "v": str(value)}
            if t is torch.Size:
                return {"$": "torch.Size", "v": [int(v) for v in value]}
            if isinstance(value, tuple) and type(value).__module__ == "torch.return_types":
                return {"$": "tuple", "v": [self.encode(v, depth + 1) for v in value]}
        if t is slice:
            return {"$": "slice", "v": [self.encode(v, depth + 1) for v in (value.start, value.stop, value.step)]}
        if t is range:
            return {"$": "range", "v": [value.start, value.stop, value.step]}
        if value is Ellipsis:
            return {"$": "ellipsis"}
        if t is complex:
            return {"$": "complex", "v": [repr(value.real), repr(value.imag)]}
        if self.handle is None:
            raise WireError(f"a {t.__module__}.{t.__qualname__} cannot be sent")
        return self.handle(value)

    def _tensor(self, torch, value):
        if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
            raise WireError(f"a {value.layout} / quantized / meta tensor cannot be sent")
        dtype = str(value.dtype).replace("torch.", "")
        if dtype not in TORCH_DTYPES:
            raise WireError(f"a tensor of dtype {dtype} cannot be sent")
        flat = value.detach()
        if flat.is_conj():
            flat = flat.resolve_conj()
        if flat.is_neg():
            flat = flat.resolve_neg()
        data = tensor_bytes(flat)
        out = {"$": "tensor", "dtype": dtype, "shape": list(value.shape), "b": self._buffer(data),
               "device": str(value.device)}
        if value.requires_grad:
            out["grad"] = True
        if isinstance(value, torch.nn.Parameter):
            out["param"] = True
        return out


def tensor_bytes(t) -> bytes:
    """The bytes of a tensor's elements in C order, whatever its strides and device."""
    import torch

    flat = t.detach().reshape(-1).contiguous().cpu()
    if not flat.numel():
        return b""
    if flat.stride(-1) != 1:     # one element with any stride counts as contiguous, and view() refuses it
        flat = torch.empty(flat.shape, dtype=flat.dtype).copy_(flat)
    return flat.view(torch.uint8).numpy().tobytes()


def encode(value, handle=None) -> tuple[object, list[bytes]]:
    enc = Encoder(handle)
    return enc.encode(value), enc.buffers


def pack(message: dict, buffers: list[bytes] = ()) -> bytes:
    """One frame: a JSON-able dict (already encoded) and its buffers."""
    header = json.dumps({"m": message, "n": [len(b) for b in buffers]}, separators=(",", ":"),
                        allow_nan=False).encode()
    if len(header) > MAX_HEADER:
        raise WireError(f"message header of {len(header)} bytes is over the {MAX_HEADER}-byte cap")
    size = _JSON_LEN.size + len(header) + sum(len(b) for b in buffers)
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size / 2**20:.0f} MiB is over the {MAX_MESSAGE / 2**20:.0f} MiB cap")
    return b"".join([_HEAD.pack(MAGIC, size), _JSON_LEN.pack(len(header)), header, *buffers])


# -- decoding ------------------------------------------------------------------------------------
class Decoder:
    """Turns (header, buffers) back into a value, checking everything. ``refs(tagged)`` decodes
    handles, callbacks and named references; ``device(name)`` maps a tensor's device to one of ours."""

    TAGS = {"bigint", "float", "tuple", "dict", "odict", "set", "frozenset", "bytes", "ndarray", "npscalar",
            "tensor", "torch.dtype", "torch.device", "torch.Size", "slice", "range", "ellipsis", "complex"}

    def __init__(self, buffers: list[memoryview], refs=None, device=None):
        self.buffers = buffers
        self.refs = refs
        self.device = device
        self.items = 0

    def _buffer(self, index) -> memoryview:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise WireError("a value names a buffer that is not there")
        return self.buffers[index]

    def decode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise WireError(f"value has more than {MAX_ITEMS} items")
        t = type(value)
        if value is None or t is bool or t is str or t is float:
            return value
        if t is int:
            if abs(value) >= 2 ** 63:
                raise WireError("integer out of range")
            return value
        if t is list:
            return [self.decode(v, depth + 1) for v in value]
        if t is not dict or type(value.get("$")) is not str:
            raise WireError(f"unexpected {t.__name__} in a message")
        tag = value["$"]
        if tag not in self.TAGS:
            if self.refs is None:
                raise WireError(f"unknown value tag {tag!r}")
            return self.refs(value)
        return getattr(self, "_" + tag.replace(".", "_"))(value, depth)

    def _list_field(self, value, key="v", size=None) -> list:
        items = value.get(key)
        if type(items) is not list or (size is not None and len(items) != size):
            raise WireError(f"malformed {value.get('$')} value")
        return items

    def _bigint(self, value, depth):
        text = value.get("v")
        if type(text) is not str or len(text) > 400:
            raise WireError("malformed big integer")
        try:
            return int(text)
        except ValueError:
            raise WireError("malformed big integer") from None

    def _float(self, value, depth):
        text = value.get("v")
        if text not in ("nan", "inf", "-inf"):
            raise WireError("malformed float")
        return float(text)

    def _complex(self, value, depth):
        parts = self._list_field(value, size=2)
        try:
            return complex(float(parts[0]), float(parts[1]))
        except (TypeError, ValueError):
            raise WireError("malformed complex number") from None

    def _tuple(self, value, depth):
        return tuple(self.decode(v, depth + 1) for v in self._list_field(value))

    def _hashable(self, key):
        try:
            hash(key)
        except TypeError:
            raise WireError(f"unhashable {type(key).__name__} as a dict key or set item") from None
        return key

    def _dict(self, value, depth, kind=dict):
        keys, values = self._list_field(value, "k"), self._list_field(value, "v")
        if len(keys) != len(values):
            raise WireError("malformed dict")
        return kind((self._hashable(self.decode(k, depth + 1)), self.decode(v, depth + 1)) for k, v in zip(keys, values))

    def _odict(self, value, depth):
        return self._dict(value, depth, OrderedDict)

    def _set(self, value, depth, kind=set):
        return kind(self._hashable(self.decode(v, depth + 1)) for v in self._list_field(value))

    def _frozenset(self, value, depth):
        return self._set(value, depth, frozenset)

    def _bytes(self, value, depth):
        return bytes(self._buffer(value.get("b")))

    def _shape(self, value) -> tuple[int, ...]:
        shape = self._list_field(value, "shape")
        if len(shape) > MAX_DIMS or any(type(s) is not int or s < 0 for s in shape):
            raise WireError("malformed shape")
        return tuple(shape)

    def _ndarray(self, value, depth):
        dtype = NUMPY_DTYPES.get(value.get("dtype"))
        if dtype is None:
            raise WireError(f"numpy dtype {value.get('dtype')!r} may not cross")
        shape, data = self._shape(value), self._buffer(value.get("b"))
        if math.prod(shape) * dtype.itemsize != len(data):
            raise WireError("array bytes do not match its shape and dtype")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def _npscalar(self, value, depth):
        dtype = NUMPY_DTYPES.get(value.get("dtype"))
        data = self._buffer(value.get("b"))
        if dtype is None or len(data) != dtype.itemsize:
            raise WireError("malformed numpy scalar")
        return np.frombuffer(data, dtype=dtype)[0]

    def _tensor(self, value, depth):
        import torch

        name = value.get("dtype")
        if name not in TORCH_DTYPES:
            raise WireError(f"tensor dtype {name!r} may not cross")
        dtype = getattr(torch, name)
        shape, data = self._shape(value), self._buffer(value.get("b"))
        itemsize = torch.empty((), dtype=dtype).element_size()
        if math.prod(shape) * itemsize != len(data):
            raise WireError("tensor bytes do not match its shape and dtype")
        if len(data):
            t = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)
        else:
            t = torch.empty(shape, dtype=dtype)
        device = value.get("device", "cpu")
        if type(device) is not str or len(device) > 32:
            raise WireError("malformed tensor device")
        if self.device is not None:
            target = self.device(device)
            if target is not None and str(target) != "cpu":
                t = t.to(target)
        if value.get("param") is True:
            t = torch.nn.Parameter(t, requires_grad=value.get("grad") is True)
        elif value.get("grad") is True and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        return t

    def _torch_dtype(self, value, depth):
        import torch

        if value.get("v") not in TORCH_DTYPES:
            raise WireError("malformed torch.dtype")
        return getattr(torch, value["v"])

    def _torch_device(self, value, depth):
        import torch

        name = value.get("v")
        if type(name) is not str or len(name) > 32:
            raise WireError("malformed torch.device")
        try:
            return torch.device(name)
        except (RuntimeError, ValueError):
            raise WireError("malformed torch.device") from None

    def _torch_Size(self, value, depth):
        import torch

        return torch.Size(self._shape({"$": "torch.Size", "shape": value.get("v")}))

    def _slice(self, value, depth):
        start, stop, step = (self.decode(v, depth + 1) for v in self._list_field(value, size=3))
        return slice(start, stop, step)

    def _range(self, value, depth):
        parts = self._list_field(value, size=3)
        if any(type(p) is not int for p in parts) or parts[2] == 0:
            raise WireError("malformed range")
        return range(*parts)

    def _ellipsis(self, value, depth):
        return Ellipsis


def unpack(frame: bytes | bytearray | memoryview) -> tuple[dict, list[memoryview]]:
    """The (header message, buffers) of one frame's body (what follows the 12-byte head)."""
    view = memoryview(frame)
    if len(view) < _JSON_LEN.size:
        raise WireError("truncated message")
    (n,) = _JSON_LEN.unpack_from(view)
    if n > MAX_HEADER or _JSON_LEN.size + n > len(view):
        raise WireError("message header too long")
    try:
        header = json.loads(bytes(view[_JSON_LEN.size:_JSON_LEN.size + n]))
    except (ValueError, RecursionError) as err:
        raise WireError(f"message header is not JSON ({type(err).__name__})") from None
    if type(header) is not dict or type(header.get("m")) is not dict or type(header.get("n")) is not list:
        raise WireError("malformed message header")
    sizes = header["n"]
    if len(sizes) > MAX_ITEMS or any(type(s) is not int or s < 0 for s in sizes):
        raise WireError("malformed buffer list")
    offset = _JSON_LEN.size + n
    if offset + sum(sizes) != len(view):
        raise WireError("buffers do not add up to the message length")
    buffers = []
    for s in sizes:
        buffers.append(view[offset:offset + s])
        offset += s
    return header["m"], buffers


def decode(value, buffers, refs=None, device=None):
    return Decoder(buffers, refs, device).decode(value)


# -- framing over a socket -------------------------------------------------------------------------
def send(sock, message: dict, buffers: list[bytes] = ()) -> None:
    sock.sendall(pack(message, buffers))


def _recv_exactly(sock, n: int, into: bytearray | None = None) -> bytearray:
    buf = into if into is not None else bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other side closed the connection")
        got += k
    return buf


def recv(sock, max_message: int | None = None) -> tuple[dict, list[memoryview]]:
    """Read one frame; raises WireError when it is malformed or over the cap, EOFError on a closed socket."""
    head = _recv_exactly(sock, _HEAD.size)
    magic, size = _HEAD.unpack(head)
    if magic != MAGIC:
        raise WireError("not a message of this protocol")
    cap = MAX_MESSAGE if max_message is None else max_message
    if size > cap:
        raise WireError(f"message of {size / 2**20:.0f} MiB is over the {cap / 2**20:.0f} MiB cap")
    return unpack(_recv_exactly(sock, size))
