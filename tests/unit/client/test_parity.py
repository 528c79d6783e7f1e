"""The sync and async twins expose the same public methods with the same parameters (R7)."""

import inspect

import pytest

import beephost_client as bc

# Names that differ only by the async spelling.
ASYNC_NAMES = {
    "close": "aclose",
    "__enter__": "__aenter__",
    "__exit__": "__aexit__",
    "__iter__": "__aiter__",
    "__next__": "__anext__",
    "handle": "handle_async",
    "stream": "stream",
}
DUNDERS = {"__call__", *ASYNC_NAMES, *ASYNC_NAMES.values()}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    methods = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in DUNDERS:
            continue
        if isinstance(inspect.getattr_static(cls, name), property):
            methods[name] = inspect.Signature()  # properties: same name is enough
        elif callable(member) and not isinstance(member, type):
            methods[name] = inspect.signature(member)
    return methods


def _async_name(name: str, async_cls: type) -> str:
    twin = ASYNC_NAMES.get(name, name)
    if name in (
        "handle",
        "stream",
        "upload",
        "download",
    ):  # transports only: proxies have a `handle` property
        twin = f"{name}_async"
        return twin if hasattr(async_cls, twin) else name
    return twin


PAIRS = [
    (bc.Client, bc.AsyncClient),
    (bc.Session, bc.AsyncSession),
    (bc.RemoteObject, bc.AsyncRemoteObject),
    (bc.ExecStream, bc.AsyncExecStream),
    (bc.Files, bc.AsyncFiles),
    (bc.PipeTransport, bc.AsyncPipeTransport),
    (bc.HTTPTransport, bc.AsyncHTTPTransport),
    (bc.GRPCTransport, bc.AsyncGRPCTransport),
    (bc.BaseTransport, bc.AsyncBaseTransport),
]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_same_methods_same_parameters(sync_cls: type, async_cls: type) -> None:
    sync_methods = public_methods(sync_cls)
    async_methods = public_methods(async_cls)
    translated = {
        _async_name(name, async_cls): sig for name, sig in sync_methods.items()
    }
    assert set(translated) == set(async_methods)
    for name, signature in translated.items():
        other = async_methods[name]
        assert list(signature.parameters) == list(other.parameters), name
        for param, twin in zip(
            signature.parameters.values(), other.parameters.values(), strict=True
        ):
            assert (param.kind, param.default) == (twin.kind, twin.default), (
                name,
                param,
            )
            assert str(param.annotation).replace("Async", "") == str(
                twin.annotation
            ).replace("Async", ""), (name, param)


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS[:5], ids=lambda c: c.__name__)
def test_io_methods_are_coroutines_only_in_the_async_twin(
    sync_cls: type, async_cls: type
) -> None:
    for name, _ in public_methods(sync_cls).items():
        member = getattr(sync_cls, name)
        if callable(member):
            assert not inspect.iscoroutinefunction(member), name


def test_connect_and_aconnect_take_the_same_parameters() -> None:
    assert list(inspect.signature(bc.connect).parameters) == list(
        inspect.signature(bc.aconnect).parameters
    )
    assert list(inspect.signature(bc.Client).parameters) == list(
        inspect.signature(bc.AsyncClient).parameters
    )
