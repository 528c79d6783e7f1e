"""The stdlib's JSON encoder and decoder without their per-call Python layers.

Every request is decoded and encoded at each hop, so these calls are per-request cost.
``json.JSONEncoder.encode`` builds a new C encoder on every call (about half of its
time for a small message), and ``JSONDecoder.decode`` runs two regular expressions
around the C scanner. The functions here build the C encoder once and call the
scanner directly, falling back to the full decoder whenever its answer could differ
(leading or trailing whitespace, extra data, any error), so results and errors are
the stdlib's own.
"""

import json
import json.encoder
from collections.abc import Callable
from typing import Any

Encode = Callable[[Any], str]
Decode = Callable[[str], Any]


def compact_encoder(*, ensure_ascii: bool, allow_nan: bool = False) -> Encode:
    """``json.JSONEncoder(ensure_ascii=..., allow_nan=..., separators=(",", ":")).encode``.

    One difference (as ``encoder``'s): a value that contains itself overflows the stack
    (RecursionError) instead of being reported as a circular reference (ValueError).
    Messages are built from decoded JSON and models, which cannot contain themselves.
    """
    return encoder(
        ensure_ascii=ensure_ascii, allow_nan=allow_nan, separators=(",", ":")
    )


def encoder(
    *,
    ensure_ascii: bool,
    allow_nan: bool = True,
    separators: tuple[str, str] = (", ", ": "),
    default: Callable[[Any], Any] | None = None,
) -> Encode:
    """``json.JSONEncoder(...).encode`` with these options, its C encoder built once.

    A value that contains itself overflows the stack (RecursionError) instead of being
    reported as a circular reference (ValueError).
    """
    base = json.JSONEncoder(
        ensure_ascii=ensure_ascii,
        allow_nan=allow_nan,
        separators=separators,
        default=default,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return base.encode
    strings = (
        json.encoder.encode_basestring_ascii
        if ensure_ascii
        else json.encoder.encode_basestring
    )
    item, key = separators
    # The arguments JSONEncoder.iterencode passes, without the circular check's dict.
    made = make(None, base.default, strings, None, key, item, False, False, allow_nan)
    join = "".join

    def encode(value: Any) -> str:
        return join(made(value, 0))

    return encode


def whole_decoder(decoder: json.JSONDecoder) -> Decode:
    """``decoder.decode``, taking the C scanner's answer when it read the whole text
    (or all of it but a final newline)."""
    # JSONDecoder.__init__ sets scan_once (the C scanner); typeshed does not list it.
    scan = decoder.scan_once  # type: ignore[attr-defined]
    full = decoder.decode

    def decode(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return full(text)  # leading whitespace, or not JSON: the full answer
        # A line's own newline (NDJSON) is the common trailing whitespace.
        if end == len(text) or (end == len(text) - 1 and text[end] == "\n"):
            return value
        return full(text)  # other trailing whitespace, or extra data: the full answer

    return decode
