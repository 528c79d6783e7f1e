"""Values cost the worker no import: the value table's types are found in sys.modules.

A value of ``datetime``, ``decimal``, ``uuid`` or ``numbers`` types cannot exist before
its module was imported, so the encoder asks ``sys.modules`` and imports nothing (a
fresh interpreter, for a clean ``sys.modules``).
"""

import subprocess
import sys
import textwrap

from beephost_core import WORKER_SCRIPT


def test_values_import_nothing_in_the_worker() -> None:
    # The table's types are found in sys.modules: a value of them cannot exist before
    # their module was imported, so encoding asks sys.modules and imports nothing.
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("w", {str(WORKER_SCRIPT)!r})
        worker = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(worker)
        session = worker.Session({{}}, None)
        before = set(sys.modules)
        session.encode([object(), {{1, 2}}, frozenset(), 1.5, 2j, (1,), {{"a": 1}}])
        print(sorted(set(sys.modules) - before))
        """
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
