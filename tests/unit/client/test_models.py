"""Output's per-MIME attributes: what each reads, and what help() says about it."""

import base64

import pytest

import beephost_client as bc
from beephost_client._models import parse
from beephost_protocol import models as wire

TEXT = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "svg": "image/svg+xml",
    "latex": "text/latex",
}
DECODED = {"png": "image/png", "jpeg": "image/jpeg"}


@pytest.mark.parametrize(("name", "mime"), TEXT.items())
def test_a_text_attribute_is_its_mime_types_string(name: str, mime: str) -> None:
    assert getattr(bc.Output("display_data", {mime: "x"}), name) == "x"
    assert getattr(bc.Output("display_data", {mime: 1}), name) is None
    assert getattr(bc.Output("display_data", {}), name) is None
    assert getattr(bc.Output, name).__doc__ == f"``{mime}``."


@pytest.mark.parametrize(("name", "mime"), DECODED.items())
def test_an_image_attribute_is_its_mime_types_decoded_bytes(
    name: str, mime: str
) -> None:
    encoded = base64.b64encode(b"\x89PNG").decode()
    assert getattr(bc.Output("display_data", {mime: encoded}), name) == b"\x89PNG"
    assert getattr(bc.Output("display_data", {mime: "not base64!"}), name) is None
    assert getattr(bc.Output("display_data", {mime: 1}), name) is None
    assert getattr(bc.Output("display_data", {}), name) is None
    assert getattr(bc.Output, name).__doc__ == f"``{mime}``, decoded."


def test_the_mime_attributes_are_read_only_properties() -> None:
    for name in (*TEXT, *DECODED):
        attribute = vars(bc.Output)[name]
        assert isinstance(attribute, property)
        assert attribute.fset is None


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (
            None,
            "reply: Input should be a valid dictionary or instance of SessionOpened",
        ),
        (
            {"session": 1, "ttl": "x"},
            "session: Input should be a valid string; ttl: Input should be a valid "
            "number, unable to parse string as a number",
        ),
    ],
    ids=["not-a-dict", "bad-fields"],
)
def test_a_reply_not_in_its_model_names_each_problem(
    raw: object, problems: str
) -> None:
    with pytest.raises(bc.BadReply) as caught:
        parse(wire.SessionOpened, raw)
    assert caught.value.message == (
        f"the server's reply is not a SessionOpened: {problems}"
    )
