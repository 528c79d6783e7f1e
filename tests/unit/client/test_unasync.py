"""The sync client is generated from the async one, and the checked-in copy is current."""

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).parents[3] / "packages" / "client" / "scripts" / "unasync.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sync_client_is_current() -> None:
    unasync = load_script()
    assert unasync.main(["--check"]) == 0, "run packages/client/scripts/unasync.py"


def test_generation_rules() -> None:
    unasync = load_script()
    source = (
        '"""doc"""\n\nclass AsyncClient:\n    async def aclose(self) -> None:\n'
        "        async with x:\n            await self._transport.handle_async(c)\n"
        "    async def __anext__(self):\n        raise StopAsyncIteration\n"
    )
    generated = unasync.generate(
        source
        + "\n# ``await proxy.name`` reads an attribute and ``await proxy.method(*args)`` calls a\n"
        "    method, one round trip each;\nA connection to one Beep Python Host backend, for asyncio code.\n"
    )
    assert "class Client:" in generated
    assert "def close(self)" in generated
    assert "with x:" in generated
    assert "self._transport.handle(c)" in generated
    assert "def __next__(self):" in generated
    assert "raise StopIteration" in generated
    assert "async" not in generated.split('"""', 2)[2].replace("asyncio", "")
