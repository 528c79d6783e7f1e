"""What a run gives the model: text cut to fit its context, images as image content,
tables as embedded HTML, and the whole result as structured content. Sans-I/O."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from mcp.types import (
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)

from beephost_client import ExecResult, Output
from beephost_mcp.settings import Limits

_IMAGE_TYPES = ("image/png", "image/jpeg")


def cut_middle(text: str, limit: int, what: str = "output") -> tuple[str, int]:
    """``text`` if it fits in ``limit`` characters, else its head and tail around a
    note of how much was cut; and the number of characters cut."""
    if len(text) <= limit:
        return text, 0
    note_room = 80  # the note's own length, so the whole stays near the limit
    keep = max(limit - note_room, 2)
    head, tail = text[: keep // 2], text[len(text) - (keep - keep // 2) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut:,} characters of {what} cut here ...]\n{tail}", cut


@dataclass
class RunOutcome:
    """Everything one run_python call produced, streamed or not."""

    stdout: str = ""
    stderr: str = ""
    result: ExecResult | None = None
    #: Rich outputs seen while streaming (the result's outputs when it completed).
    outputs: list[Output] = field(default_factory=list)


def _json_value(value: Any) -> Any:
    """The value when JSON can carry it as it is, else None (its text is in ``result``)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value


def _image(output: Output) -> tuple[str, bytes] | None:
    for mime in _IMAGE_TYPES:
        data = output.png if mime == "image/png" else output.jpeg
        if data is not None:
            return mime, data
    return None


def shape_run(
    outcome: RunOutcome, limits: Limits, error: dict[str, Any] | None = None
) -> CallToolResult:
    """The tool result of a run: text first (what the model reads), then images and
    tables; ``error`` (a failure's structured form) makes it an error result."""
    structured: dict[str, Any] = {}
    sections: list[str] = []
    truncated: dict[str, int] = {}
    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        shown, cut = cut_middle(text, limits.max_output_chars, name)
        structured[name] = shown
        if cut:
            truncated[name] = cut
        if shown:
            sections.append(f"[{name}]\n{shown.rstrip(chr(10))}")
    result = outcome.result
    if result is not None:
        dropped = {"stdout": result.stdout_dropped, "stderr": result.stderr_dropped}
        for name, size in dropped.items():
            if size:  # the backend's own limit cut it before it reached us
                sections.append(f"[{size:,} bytes of {name} dropped by the sandbox]")
        if result.text is not None:
            shown, cut = cut_middle(result.text, limits.max_output_chars, "the result")
            structured["result"] = shown
            if cut:
                truncated["result"] = cut
            sections.append(f"[result]\n{shown}")
        structured["value"] = _json_value(result.value)
        structured["outputs_dropped_bytes"] = result.outputs_dropped
    blocks: list[ContentBlock] = []
    images_sent, skipped = 0, 0
    described: list[dict[str, Any]] = []
    for index, output in enumerate(outcome.outputs):
        entry: dict[str, Any] = {
            "type": output.output_type,
            "mimes": sorted(output.data),
        }
        image = _image(output)
        if image is not None:
            mime, data = image
            if images_sent < limits.max_images and len(data) <= limits.max_image_bytes:
                blocks.append(
                    ImageContent(
                        type="image",
                        data=base64.b64encode(data).decode("ascii"),
                        mime_type=mime,
                    )
                )
                images_sent += 1
                entry["sent"] = True
            else:
                skipped += 1
                entry["sent"] = False
        elif output.html is not None:
            html, cut = cut_middle(output.html, limits.max_html_chars, "HTML")
            blocks.append(
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri=f"beephost://outputs/{index}.html",
                        mime_type="text/html",
                        text=html,
                    ),
                )
            )
            if cut:
                truncated[f"output {index} html"] = cut
        elif output.text is not None and output.output_type == "display_data":
            shown, _ = cut_middle(output.text, limits.max_output_chars, "display")
            sections.append(f"[display]\n{shown}")
        described.append(entry)
    if images_sent or skipped:
        note = f"[{images_sent} image(s) attached"
        note += (
            f"; {skipped} more not sent (over the count or size limit)]"
            if skipped
            else "]"
        )
        sections.append(note)
    structured["outputs"] = described
    structured["images_sent"] = images_sent
    structured["images_skipped"] = skipped
    structured["truncated"] = truncated
    if error is not None:
        structured["error"] = error
        sections.append(error_text(error))
    if not sections:
        sections.append("(no output)")
    summary = TextContent(type="text", text="\n".join(sections))
    return CallToolResult(
        content=[summary, *blocks],
        structured_content=structured,
        is_error=error is not None,
    )


def error_text(error: dict[str, Any]) -> str:
    """How a failure reads to the model: what happened, then what to do about it."""
    text = f"[error: {error['code']}]\n{error['message']}"
    if error.get("hint"):
        text += f"\n({error['hint']})"
    return text


def error_result(error: dict[str, Any]) -> CallToolResult:
    """A tool's failure outside a run: the text, and the error as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=error_text(error))],
        structured_content={"error": error},
        is_error=True,
    )
