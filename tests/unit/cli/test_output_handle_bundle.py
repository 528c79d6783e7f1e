"""``--json`` keeps a returned handle's rich bundle, as the reply carried it."""

import beephost_client as bc
from beephost_cli.output import jsonable
from beephost_protocol import ObjectRelease

BUNDLE = {
    "output_type": "execute_result",
    "data": {"text/html": "<table></table>", "text/plain": "Table()"},
    "metadata": {},
}


def test_a_handle_keeps_its_bundle_in_json() -> None:
    handle = {"id": "h1", "type": "Table", "repr": "Table()"}

    def handler(command: object) -> dict[str, object]:
        if isinstance(command, ObjectRelease):
            return {"released": 1}
        return {"value": {"$handle": {**handle, "bundle": BUNDLE}}}

    with bc.Client(transport=bc.MockTransport(handler)) as client:
        value = client.evaluate("t")
        assert jsonable(value) == {"$handle": {**handle, "bundle": BUNDLE}}
        client.release(value)
