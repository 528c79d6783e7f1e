"""Direct references in a lock: a hashed wheel URL is downloaded from its URL and
installed offline as ``name==version``; anything that would need a build is refused,
naming the requirement. (The real build: tests/e2e/test_direct_references.py.)"""

import pytest

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.lockfile import parse_export

WHEEL = "https://files.example/p/six-1.17.0-py2.py3-none-any.whl"
DIGEST = "sha256:" + "ab" * 32


def test_a_wheel_url_is_downloaded_from_it_and_installed_pinned() -> None:
    lock = f'six @ {WHEEL} ; python_version >= "3" \\\n    --hash={DIGEST}\n'
    (requirement,) = parse_export(lock).requirements
    assert (requirement.name, requirement.version) == ("six", "1.17.0")
    assert requirement.url == WHEEL
    assert requirement.line() == f'six==1.17.0 ; python_version >= "3" --hash={DIGEST}'
    assert requirement.source(marker=False) == f"six @ {WHEEL} --hash={DIGEST}"


def test_an_index_pin_downloads_as_itself() -> None:
    (requirement,) = parse_export(f"attrs==25.3.0 --hash={DIGEST}\n").requirements
    assert requirement.url is None
    assert (
        requirement.source() == requirement.line() == f"attrs==25.3.0 --hash={DIGEST}"
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"six @ https://files.example/p/six-1.17.0.tar.gz --hash={DIGEST}", "wheel"),
        ("six @ git+https://github.com/benjaminp/six@0123abc", "wheel"),
        (
            f"six @ git+https://example.org/six-1.0-py3-none-any.whl --hash={DIGEST}",
            "wheel",
        ),
        (f"six @ {WHEEL}", "without a hash"),
        (f"attrs @ {WHEEL} --hash={DIGEST}", "not attrs's"),
    ],
)
def test_what_cannot_be_installed_offline_is_refused_by_name(
    line: str, reason: str
) -> None:
    head = line.split(" --hash", 1)[0]
    with pytest.raises(BackendImageError) as caught:
        parse_export(line + "\n")
    assert head in str(caught.value)
    assert reason in str(caught.value)
