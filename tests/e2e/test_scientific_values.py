"""Real numpy and pandas results are plain values, on every backend type.

One real ``beephost-controller`` process builds an environment with numpy and pandas
from PyPI on the real engine; each backend type serves it, and what an LLM console's
code returns (``df['a'].sum()``, numpy scalars, a set of them) arrives as Python
values the app can compute with, not handles.
"""

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.controller_process import build_environment, stopped_after

pytestmark = pytest.mark.docker

#: Unpinned within majors: pip picks the newest wheels for the environment's CPython.
SCIENTIFIC = ["numpy>=2,<3", "pandas>=2,<4"]


@pytest.fixture(scope="module")
def scientific(api: ControllerClient) -> str:
    """An environment with numpy and pandas, built once for the module."""
    return build_environment(api, "scientific", SCIENTIFIC, timeout=900)


@pytest.mark.parametrize("kind", ["pipe", "http", "rpc"])
def test_numpy_and_pandas_results_are_python_values(
    api: ControllerClient, scientific: str, kind: str
) -> None:
    started = api.start_backend(scientific, kind)  # type: ignore[arg-type]
    backend = api.wait_backend(started.id, timeout=60)
    with (
        stopped_after(api, backend),
        api.connect_backend(backend.id) as client,
        client.session() as session,
    ):
        session.execute(
            "import numpy as np, pandas as pd\n"
            "df = pd.DataFrame({'a': [1, 2, 3], 'b': [0.5, 1.5, float('nan')]})"
        )
        total = session.evaluate("df['a'].sum()")
        assert session.evaluate("type(df['a'].sum()).__module__") == "numpy"
        assert type(total) is int
        assert total + 1 == 7
        mean = session.evaluate("df['b'].mean()")
        assert (type(mean), mean) == (float, 1.0)
        assert session.evaluate("np.float32(0.25)") == 0.25
        flags = session.evaluate("[np.bool_(True), df['a'].gt(2).any()]")
        assert flags == [True, True]
        assert all(type(flag) is bool for flag in flags)
        assert session.evaluate("set(df['a'])") == {1, 2, 3}
        assert session.evaluate("np.complex128(1 - 2j)") == 1 - 2j
        uniques = session.evaluate("frozenset(np.unique(df['a'] * 2))")
        assert uniques == frozenset({2, 4, 6})
        # An integer with a unit stays what it is.
        delta = session.evaluate("np.timedelta64(5, 's')")
        assert delta.handle.type == "numpy.timedelta64"
        # What stays a handle says what it is in the same reply.
        frame = session.evaluate("df")
        assert frame.handle.type == "pandas.DataFrame"
        assert "a" in frame.repr
        assert str(frame) == frame.repr
        # ... and its rich form, the DataFrame's HTML table, built by pandas.
        assert frame.bundle is not None
        assert "<table" in (frame.bundle.html or "")
        assert frame.bundle.text == frame.repr
        # numpy values sent back are the session's numbers again.
        assert session.evaluate("int(df['a'].sum()) + x", locals={"x": total}) == 12
