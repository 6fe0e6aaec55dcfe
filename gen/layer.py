"""One convolution layer: its shape, stride, padding, groups and output stage."""

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from .errors import LayerError

__all__ = ["LayerSpec", "load_layer"]


@dataclass(frozen=True)
class LayerSpec:
    """A conv layer. ``H`` and ``W`` are the unpadded input size; ``padding`` is symmetric zero
    padding. ``shift`` None means the raw psum is the output; an integer >= 0 requantizes
    (round half up, arithmetic shift, clamp to the activation width)."""

    N: int
    C: int
    H: int
    W: int
    M: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    relu: bool = False
    shift: int | None = None

    def __post_init__(self):
        for name in ("N", "C", "H", "W", "M", "R", "S", "stride", "groups"):
            _check_int(name, getattr(self, name), 1)
        _check_int("padding", self.padding, 0)
        if not isinstance(self.relu, bool):
            raise LayerError("relu", self.relu, "true or false")
        if self.shift is not None:
            _check_int("shift", self.shift, 0, 62)
        for name in ("C", "M"):
            if getattr(self, name) % self.groups:
                raise LayerError("groups", self.groups, f"a divisor of {name}={getattr(self, name)}")
        if self.E < 1:
            raise LayerError("R", self.R, f"at most H + 2*padding = {self.H + 2 * self.padding}")
        if self.F < 1:
            raise LayerError("S", self.S, f"at most W + 2*padding = {self.W + 2 * self.padding}")

    @property
    def E(self):
        return (self.H + 2 * self.padding - self.R) // self.stride + 1

    @property
    def F(self):
        return (self.W + 2 * self.padding - self.S) // self.stride + 1

    @property
    def C_per_group(self):
        return self.C // self.groups

    @property
    def M_per_group(self):
        return self.M // self.groups

    @property
    def macs(self):
        return self.N * self.M * self.E * self.F * self.C_per_group * self.R * self.S

    @property
    def ifmap_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self):
        return (self.M, self.C_per_group, self.R, self.S)

    @property
    def ofmap_shape(self):
        return (self.N, self.M, self.E, self.F)

    def to_dict(self):
        return asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise LayerError("layer", data, "a JSON object")
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise LayerError(key, data[key], f"a known key ({', '.join(sorted(names))})",
                                 what="unknown key")
        missing = [f.name for f in fields(cls)
                   if f.name not in data and f.default is MISSING]
        if missing:
            raise LayerError(missing[0], None, "a value (the key is required)",
                             what="missing key")
        return cls(**data)


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or \
            (hi is not None and value > hi):
        allowed = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"
        raise LayerError(name, value, allowed)


def load_layer(path):
    """Read a LayerSpec from a JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LayerError("--layer", str(path), "an existing JSON file", what="missing file") from None
    except OSError as exc:  # a directory, no permission, ...
        raise LayerError("--layer", str(path), f"a readable JSON file ({exc.strerror or exc})",
                         what="unreadable file") from None
    except UnicodeDecodeError:
        raise LayerError("--layer", str(path), "a UTF-8 JSON file") from None
    except json.JSONDecodeError as exc:
        raise LayerError("--layer", str(path), f"valid JSON ({exc.msg} at line {exc.lineno})") from None
    return LayerSpec.from_dict(data)
