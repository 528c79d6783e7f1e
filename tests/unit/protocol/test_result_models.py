"""Every reply a backend sends validates as its command's result model.

The SDK reads replies through these models (``model_validate``), so a field a transport
may leave out must be optional in the model: gRPC's decoded replies leave out
``outputs`` when there are none and carry a ``ttl`` of null for ``default``.
"""

import pytest
from pydantic import BaseModel

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import models, pb_codec
from beephost_protocol.schema import RESULTS
from tests.results import exec_result

LEASE = "lease-0123456789abcdef"
COMMANDS: list[models.Command] = [
    models.Evaluate(expression="1"),
    models.Execute(code="1"),
    models.ObjectCreate(target="dict"),
    models.ObjectGetAttr(handle="h1", name="x"),
    models.ObjectSetAttr(handle="h1", name="x", value=1),
    models.ObjectCall(handle="h1", method="m"),
    models.ObjectRelease(handles=["h1"]),
    models.ObjectList(),
    models.SessionInfo(),
    models.SessionOpen(),
    models.SessionClose(session="s"),
    models.SessionList(),
    models.Interrupt(),
]
LEASE_RESULTS: dict[str, type[BaseModel]] = {
    "lease.renew": models.LeaseRenewed,
    "lease.release": models.LeaseReleased,
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.COMMAND)
def test_an_empty_grpc_reply_is_a_valid_result(command: models.Command) -> None:
    spec, _ = pb_codec.encode_command(command)
    result = pb_codec.decode_reply(spec, spec.reply())
    RESULTS[command.COMMAND].model_validate(result)


@pytest.mark.parametrize(
    "command",
    [models.LeaseRenew(lease=LEASE), models.LeaseRelease(lease=LEASE)],
    ids=str,
)
def test_an_empty_grpc_lease_reply_is_a_valid_result(command: models.Command) -> None:
    spec, _ = pb_codec.encode_command(command)
    result = pb_codec.decode_reply(spec, spec.reply())
    LEASE_RESULTS[command.COMMAND].model_validate(result)


def test_a_plain_exec_result_has_no_outputs_and_a_streamed_display_is_an_output() -> (
    None
):
    result = models.ExecResult.model_validate(exec_result())
    assert (result.outputs, result.outputs_dropped) == ([], 0)
    event = pb.ExecuteEvent(
        display=pb.Output(output_type="display_data", data_json='{"text/plain": "x"}')
    )
    item = pb_codec.decode_event(event)
    assert isinstance(item, tuple)
    kind, output = item
    assert kind == "display"
    assert models.Output.model_validate(output).data == {"text/plain": "x"}


def test_session_info_ttl_may_be_null() -> None:
    spec, _ = pb_codec.encode_command(models.SessionInfo())
    result = pb_codec.decode_reply(spec, spec.reply())
    assert result["ttl"] is None
    assert models.SessionDescription.model_validate(result).ttl is None
