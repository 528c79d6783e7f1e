"""How long error text is cut, the same way on every transport (sans-I/O).

gRPC carries an error in trailing metadata, which clients cap at 8 KiB; the pipe and
HTTP could carry more. So that one failure reads the same everywhere, every transport
cuts an error's message, traceback and arguments here before sending it (see
``BeepHostError.to_wire``), to sizes that fit the gRPC budget together:

- text is cut in the middle, keeping its start and its end, around a
  ``[... N characters cut ...]`` marker;
- a traceback keeps its structure and every frame of the user's code (files named
  ``<beephost-N>``): frames of library code are dropped from the middle first, each run
  replaced by ``[... N library frames cut ...]``; only if the user's own frames are still
  too long is the rest cut in the middle as text.

Sizes are bytes of the text as escaped JSON (ASCII, ``\\uXXXX`` for the rest): what the
gRPC metadata carries, and a deterministic measure of the text itself.
"""

import json

_encode_ascii = json.JSONEncoder().encode
_USER_FRAME = '  File "<beephost-'
_FRAME = '  File "'
# A user frame or other line longer than this is cut on its own first.
_LINE_SHARE = 4


def escaped_size(text: str) -> int:
    """Bytes of ``text`` as escaped JSON, without its quotes."""
    plain = text.isascii() and text.isprintable()
    if plain and '"' not in text and "\\" not in text:
        return len(text)
    return len(_encode_ascii(text)) - 2


def cut_middle(text: str, budget: int) -> str:
    """``text`` if it fits ``budget``, else its start and end around a cut marker."""
    if len(text) <= budget and escaped_size(text) <= budget:
        return text
    keep = min(len(text), budget)
    while True:
        head = keep - keep // 2
        tail = keep // 2
        cut = len(text) - keep
        candidate = (
            f"{text[:head]}[... {cut} characters cut ...]"
            f"{text[len(text) - tail :] if tail else ''}"
        )
        size = escaped_size(candidate)
        if size <= budget or keep == 0:
            return candidate
        keep = max(0, min(keep - 1, keep * budget // size - 16))


def cut_traceback(traceback: str, budget: int) -> str:
    """A formatted traceback within ``budget``, keeping the user's frames (see above)."""
    if len(traceback) <= budget and escaped_size(traceback) <= budget:
        return traceback
    blocks = _blocks(traceback)
    share = budget // _LINE_SHARE
    texts = [
        text if kind == "library" else _cut_block(text, share) for kind, text in blocks
    ]
    sizes = [escaped_size(text) for text in texts]
    library = [i for i, (kind, _) in enumerate(blocks) if kind == "library"]
    # Drop library frames from the middle outward until what is left fits.
    middle = (len(library) - 1) / 2
    order = sorted(range(len(library)), key=lambda k: (abs(k - middle), k))
    dropped: set[int] = set()
    total = sum(sizes)
    for k in order:
        if total <= budget:
            joined = _join(texts, dropped)
            if escaped_size(joined) <= budget:
                return joined
        index = library[k]
        dropped.add(index)
        total -= sizes[index]
    return cut_middle(_join(texts, dropped), budget)


def _blocks(traceback: str) -> list[tuple[str, str]]:
    """(kind, text) of each frame (its ``File`` line and the source lines under it) and
    of each other line; kind is "user", "library" or "other"."""
    lines = traceback.splitlines(keepends=True)
    blocks: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        j = i + 1
        if line.startswith(_FRAME):
            while j < len(lines) and lines[j].startswith("    "):
                j += 1
            kind = "user" if line.startswith(_USER_FRAME) else "library"
        else:
            kind = "other"
        blocks.append((kind, "".join(lines[i:j])))
        i = j
    return blocks


def _cut_block(text: str, budget: int) -> str:
    if len(text) <= budget and escaped_size(text) <= budget:
        return text
    ending = "\n" if text.endswith("\n") else ""
    return cut_middle(text.removesuffix("\n"), budget - len(ending)) + ending


def _join(texts: list[str], dropped: set[int]) -> str:
    parts: list[str] = []
    run = 0
    for index, text in enumerate(texts):
        if index in dropped:
            run += 1
            continue
        if run:
            parts.append(f"  [... {run} library frames cut ...]\n")
            run = 0
        parts.append(text)
    if run:
        parts.append(f"  [... {run} library frames cut ...]\n")
    return "".join(parts)
