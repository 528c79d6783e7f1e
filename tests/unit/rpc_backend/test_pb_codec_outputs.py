"""Rich outputs through the protobuf codec: lossless, and absent when there are none."""

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import models, pb_codec
from tests.results import exec_result

OUTPUT = {
    "output_type": "display_data",
    "data": {
        "image/png": "iVBORw0KGgo=",
        "application/json": {"a": [1, 2.5, None]},
        "text/plain": "<Figure size 640x480 with 1 Axes>",
    },
    "metadata": {"image/png": {"width": 640, "height": 480}},
}
PLAIN = exec_result(value=2, has_value=True)
SPEC, _ = pb_codec.encode_command(models.Execute(code="x"))


def test_outputs_round_trip() -> None:
    result = {**PLAIN, "outputs": [OUTPUT], "outputs_dropped": 7}
    reply = pb_codec.execute_reply(result)
    assert reply.outputs[0].output_type == "display_data"
    assert pb_codec.decode_reply(SPEC, reply) == result
    models.ExecResult.model_validate(pb_codec.decode_reply(SPEC, reply))


def test_a_plain_result_has_no_outputs_field() -> None:
    reply = pb_codec.execute_reply(PLAIN)
    assert not reply.outputs
    assert pb_codec.decode_reply(SPEC, reply) == PLAIN


def test_display_events() -> None:
    event = pb_codec.output_event("display", OUTPUT)
    assert event.WhichOneof("event") == "display"
    assert pb_codec.decode_event(event) == ("display", OUTPUT)
    parsed = pb.ExecuteEvent.FromString(event.SerializeToString())
    assert pb_codec.decode_event(parsed) == ("display", OUTPUT)
    assert pb_codec.decode_event(pb_codec.output_event("stderr", "e")) == (
        "stderr",
        "e",
    )
