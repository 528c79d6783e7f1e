"""Claims the docs once made against the code (an outside review, November 2026) stay gone.

Each was true of an older version or never: a page saying it again contradicts the
code and the pages that describe it right (named beside each phrase).
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE_PAGES = (
    "docs/operators/helm.md",
    "docs/operators/kubernetes.md",
    "charts/beephost/README.md",
    "charts/beephost/templates/NOTES.txt",
)
#: (file, phrase, what is true instead)
RETIRED = [
    *(
        (page, phrase, "without an engine the controller becomes ready (no_engine.py)")
        for page in NO_ENGINE_PAGES
        for phrase in ("it exits", "needs a Docker engine to start", "Known gap")
    ),
    (
        "docs/users/api.md",
        "still finishes the code",
        "an abandoned stream is interrupted (pipe.md §10, http.md §3, rpc.md §6)",
    ),
    *(
        (
            f"packages/client/src/beephost_client/_{kind}/_client.py",
            "still finishes it",
            "an abandoned stream is interrupted",
        )
        for kind in ("async", "sync")
    ),
    (
        "docs/protocol/http.md",
        "the one status not from the table",
        "415 is not from the table either (http.md §1)",
    ),
]


@pytest.mark.parametrize(
    ("path", "phrase", "truth"), RETIRED, ids=[f"{p}:{w}" for p, w, _ in RETIRED]
)
def test_a_retired_claim_stays_gone(path: str, phrase: str, truth: str) -> None:
    text = " ".join((ROOT / path).read_text().split())  # a phrase across a line break
    assert phrase not in text, f"{path} says {phrase!r}, but {truth}"
