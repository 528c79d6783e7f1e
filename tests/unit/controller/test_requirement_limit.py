"""How many requirements one resolution may take (Settings.max_requirements)."""

import pytest
from pydantic import ValidationError

from beephost_controller.requirements import check_count
from beephost_controller.settings import Settings
from beephost_protocol.errors import InvalidRequest


def test_up_to_the_limit_passes_and_past_it_is_refused_in_words() -> None:
    check_count(["a"] * 1000, 1000)
    with pytest.raises(InvalidRequest) as caught:
        check_count(["a"] * 1001, 1000)
    assert str(caught.value) == (
        "1001 requirements: at most 1000 are resolved at once; name fewer (the limit "
        "is the controller's setting BEEPHOST_CONTROLLER_MAX_REQUIREMENTS)"
    )
    assert caught.value.data == {"requirements": 1001, "limit": 1000}


def test_the_limit_is_a_setting_with_a_safe_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().max_requirements == 1000
    monkeypatch.setenv("BEEPHOST_CONTROLLER_MAX_REQUIREMENTS", "20")
    assert Settings().max_requirements == 20
    for unsafe in ("0", "1000000"):
        monkeypatch.setenv("BEEPHOST_CONTROLLER_MAX_REQUIREMENTS", unsafe)
        with pytest.raises(ValidationError):
            Settings()
