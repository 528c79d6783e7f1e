"""Client-side codec for values on the wire: JSON plus a few ``$``-tagged forms.

Tagged forms (an object with exactly one key starting with ``$``):

- ``{"$float": "nan" | "inf" | "-inf"}``: non-finite floats (strict JSON has none)
- ``{"$bytes": "<base64>"}``: bytes
- ``{"$tuple": [...]}``: tuples (lists stay lists)
- ``{"$map": [[key, value], ...]}``: dicts with non-string keys
- ``{"$dict": {...}}``: a dict that would otherwise look like a tag
- ``{"$handle": {"id", "type", "repr"}}``: a reference to an object kept in the session;
  a reply's own value also carries ``"bundle"``, its rich representation, when it has one
- ``{"$int": "<hex>"}``: an integer of 4000 decimal digits or more (``"-1f"``); smaller
  ones are JSON numbers. Python and most JSON parsers refuse to convert decimal numbers
  of more than 4300 digits; hex text converts in linear time and is never refused.
- ``{"$set": [...]}`` / ``{"$frozenset": [...]}``: sets whose members are all hashable
  values (a set with any other member comes as a ``$handle``)
- ``{"$complex": [real, imag]}``: complex numbers (each part a number or ``$float``)
- ``{"$decimal": "1.10"}``: ``decimal.Decimal``, its exact text
- ``{"$datetime": ISO}``, ``{"$date": ISO}``, ``{"$time": ISO}``: ``datetime`` values,
  with their UTC offset when they have one
- ``{"$timedelta": [days, seconds, microseconds]}``: ``datetime.timedelta``
- ``{"$uuid": "..."}``: ``uuid.UUID``
- ``{"$path": "/a/b"}``: a POSIX path; it names a file on the server, so it decodes as a
  ``pathlib.PurePosixPath`` here

The one table of every value and its form is docs/protocol/pipe.md, section 8.

The worker has its own stdlib-only encoder for arbitrary Python objects; this module is
what clients use and is tested against it.
"""

import base64
import datetime
import decimal
import math
import numbers
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

_FLOAT_TAGS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_BIG_INT = 10**4000  # from this magnitude on, integers travel as {"$int": hex}


@dataclass(frozen=True, slots=True)
class Handle:
    """A remote object reference as returned by the server.

    ``bundle`` is the object's rich MIME bundle (an output object: ``output_type``,
    ``data``, ``metadata``) when the handle was a reply's own value and the object
    has more than text/plain; else None. It is not part of the handle's identity.
    """

    id: str
    type: str = ""
    repr: str = ""
    bundle: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_wire(self) -> dict[str, Any]:
        return {"$handle": {"id": self.id, "type": self.type, "repr": self.repr}}


def encode_value(value: Any) -> Any:
    """Turn a Python value into its wire form; raise TypeError for unsupported types."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if -_BIG_INT < value < _BIG_INT:
            return value
        return {"$int": format(value, "x")}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {
            "$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        }
    if isinstance(value, Handle):
        return value.to_wire()
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(item) for item in value]}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset):
        tag = "$frozenset" if isinstance(value, frozenset) else "$set"
        return {tag: [encode_value(item) for item in value]}
    tagged = _encode_plain(value)
    if tagged is not None:
        return tagged
    if isinstance(value, numbers.Number):  # numpy's scalars, as the worker sends them
        return _encode_number(value)
    if _numpy_name(value) in ("bool_", "bool"):  # no number to the numbers ABCs
        return bool(value)
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            encoded = {key: encode_value(item) for key, item in value.items()}
            if len(encoded) == 1 and next(iter(encoded)).startswith("$"):
                return {"$dict": encoded}
            return encoded
        return {"$map": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    raise TypeError(f"cannot send a {type(value).__name__} by value; use a handle")


def _encode_plain(value: Any) -> dict[str, Any] | None:
    # Exact types: a subclass may carry more than its base's text says.
    cls = type(value)
    if isinstance(value, complex):
        return {"$complex": [encode_value(value.real), encode_value(value.imag)]}
    if cls is decimal.Decimal:
        return {"$decimal": str(value)}
    if cls is datetime.datetime:
        if value.tzinfo is not None and value.utcoffset() is None:
            return None
        return {"$datetime": value.isoformat()}
    if cls is datetime.date:
        return {"$date": value.isoformat()}
    if cls is datetime.time:
        if value.tzinfo is not None and type(value.tzinfo) is not datetime.timezone:
            return None
        return {"$time": value.isoformat()}
    if cls is datetime.timedelta:
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if cls is uuid.UUID:
        return {"$uuid": str(value)}
    if isinstance(value, PurePosixPath):  # Path on POSIX; never a Windows path
        return {"$path": str(value)}
    return None


def _numpy_name(value: Any) -> str:
    cls = type(value)
    return cls.__name__ if getattr(cls, "__module__", "") == "numpy" else ""


def _encode_number(value: Any) -> Any:
    # A Fraction as a float would lose its exactness; a timedelta64 as an int its unit.
    if _numpy_name(value) == "timedelta64" or (
        isinstance(value, numbers.Rational) and not isinstance(value, numbers.Integral)
    ):
        raise TypeError(f"cannot send a {type(value).__name__} by value; use a handle")
    if isinstance(value, numbers.Integral):
        return encode_value(int(value))
    if isinstance(value, numbers.Real):
        return encode_value(float(value))
    return encode_value(complex(value))  # numbers.Complex


def decode_value(value: Any) -> Any:
    """Turn a wire value into Python: tags become floats, bytes, tuples, Handles."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        decode = _DECODERS.get(key)
        if decode is not None:
            return decode(inner)
    return {key: decode_value(item) for key, item in value.items()}


def _decode_complex(inner: Any) -> complex:
    real, imag = (decode_value(part) for part in inner)
    return complex(real, imag)


def _decode_timedelta(inner: Any) -> datetime.timedelta:
    days, seconds, micros = inner
    return datetime.timedelta(days, seconds, micros)


def _decode_handle(inner: Any) -> Handle:
    bundle = inner.get("bundle")
    return Handle(
        str(inner["id"]),
        str(inner.get("type", "")),
        str(inner.get("repr", "")),
        bundle if isinstance(bundle, dict) else None,
    )


# One decoder per value tag of this protocol version: the keys are the tags (the
# worker's _TAGS, kept equal by a test). An unknown "$" key decodes as a plain dict,
# as in the worker: forward compatible.
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$float": _FLOAT_TAGS.__getitem__,
    "$bytes": base64.b64decode,
    "$tuple": lambda inner: tuple(decode_value(item) for item in inner),
    "$map": lambda inner: {decode_value(k): decode_value(v) for k, v in inner},
    "$dict": lambda inner: {key: decode_value(item) for key, item in inner.items()},
    "$handle": _decode_handle,
    "$int": lambda inner: int(inner, 16),
    "$set": lambda inner: {decode_value(item) for item in inner},
    "$frozenset": lambda inner: frozenset(decode_value(item) for item in inner),
    "$complex": _decode_complex,
    "$decimal": decimal.Decimal,
    "$datetime": datetime.datetime.fromisoformat,
    "$date": datetime.date.fromisoformat,
    "$time": datetime.time.fromisoformat,
    "$timedelta": _decode_timedelta,
    "$uuid": uuid.UUID,
    "$path": PurePosixPath,
}
_TAGS = frozenset(_DECODERS)
