"""What a run puts in the model's context: text cut in the middle, images capped."""

import base64

from mcp.types import EmbeddedResource, ImageContent, TextContent

from beephost_client import ExecResult, Output
from beephost_mcp.settings import Limits
from beephost_mcp.shaping import RunOutcome, cut_middle, shape_run

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def _png_output(size: int = 0) -> Output:
    data = PNG + b"\x00" * size
    return Output(
        "display_data",
        {"image/png": base64.b64encode(data).decode(), "text/plain": "<Figure>"},
    )


def test_text_that_fits_is_unchanged() -> None:
    assert cut_middle("abc", 10) == ("abc", 0)


def test_long_text_keeps_its_head_and_tail_and_says_what_was_cut() -> None:
    text = "A" * 500 + "B" * 9000 + "Z" * 500
    shown, cut = cut_middle(text, 1000, "stdout")
    assert shown.startswith("A" * 400)
    assert shown.endswith("Z" * 400)
    assert f"[... {cut:,} characters of stdout cut here ...]" in shown
    assert cut == len(text) - len(shown.split("\n")[0]) - len(shown.split("\n")[-1])
    assert len(shown) <= 1000


def test_images_over_the_count_or_size_are_counted_not_sent() -> None:
    limits = Limits(max_images=2, max_image_bytes=2048)
    outputs = [_png_output(), _png_output(5000), _png_output(), _png_output()]
    result = shape_run(RunOutcome(outputs=outputs), limits)
    images = [b for b in result.content if isinstance(b, ImageContent)]
    assert [base64.b64decode(i.data) for i in images] == [PNG, PNG]
    assert result.structured_content is not None
    assert result.structured_content["images_skipped"] == 2
    assert "2 more not sent" in result.content[0].text  # type: ignore[union-attr]


def test_a_table_comes_as_embedded_html_and_its_text_as_the_result() -> None:
    table = Output(
        "execute_result", {"text/html": "<table></table>", "text/plain": "   a\n0  1"}
    )
    result = ExecResult(
        stdout="", stderr="", value=None, has_value=True, outputs=[table]
    )
    shaped = shape_run(RunOutcome(result=result, outputs=[table]), Limits())
    text, html = shaped.content
    assert isinstance(text, TextContent)
    assert "[result]\n   a\n0  1" in text.text
    assert isinstance(html, EmbeddedResource)
    assert html.resource.mime_type == "text/html"
    assert not shaped.is_error


def test_an_error_makes_an_error_result_with_the_output_before_it() -> None:
    error = {"code": "python_error", "message": "Traceback ...", "hint": "fix it"}
    shaped = shape_run(RunOutcome(stdout="partial\n"), Limits(), error)
    assert shaped.is_error
    assert shaped.structured_content is not None
    assert shaped.structured_content["error"] == error
    text = shaped.content[0].text  # type: ignore[union-attr]
    assert text.index("partial") < text.index("[error: python_error]")


def test_a_value_json_cannot_carry_is_left_to_its_text() -> None:
    result = ExecResult(stdout="", stderr="", value={1, 2}, has_value=True)
    shaped = shape_run(RunOutcome(result=result), Limits())
    assert shaped.structured_content is not None
    assert shaped.structured_content["value"] is None
    assert shaped.structured_content["result"] == "{1, 2}"
