"""The OpenAPI document (and the JSON Schema) describe a handle's rich ``bundle``."""

from typing import Any

from jsonschema import Draft202012Validator

from beephost_http_backend import Settings, create_app
from beephost_protocol.schema import build_schema

BUNDLE = {
    "output_type": "execute_result",
    "data": {"text/html": "<table></table>", "text/plain": "Table()"},
    "metadata": {"dropped": {"image/png": 9000000}},
}
HANDLE = {"$handle": {"id": "h1", "type": "__main__.Table", "repr": "Table()"}}


def validator(document: dict[str, Any], root: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{root}Value", **document})


def test_a_handle_with_a_bundle_is_a_value_and_a_wrong_bundle_is_not() -> None:
    openapi = create_app(Settings()).openapi()
    documents = [
        validator({"components": openapi["components"]}, "#/components/schemas/"),
        validator({"$defs": build_schema()["$defs"]}, "#/$defs/"),
    ]
    with_bundle = {"$handle": {**HANDLE["$handle"], "bundle": BUNDLE}}
    wrong = {"$handle": {**HANDLE["$handle"], "bundle": {"data": "<b>"}}}
    for document in documents:
        assert document.is_valid(HANDLE)
        assert document.is_valid(with_bundle)
        assert not document.is_valid(wrong)
