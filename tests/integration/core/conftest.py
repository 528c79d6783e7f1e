"""Executors on the empty environment's interpreter, closed after each test."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from beephost_core import Executor, ExecutorConfig
from beephost_protocol import models
from tests.integration.core.rich_fakes import HTML

MakeExecutor = Callable[..., Any]


@pytest.fixture
def executor_defaults() -> dict[str, Any]:
    """The config every executor of a test starts from; a module may override it."""
    return {"kill_grace": 0.5}


@pytest.fixture
async def make_executor(
    env_python: str, executor_defaults: dict[str, Any]
) -> AsyncIterator[MakeExecutor]:
    """``await make_executor(**overrides)``: a started executor, closed afterwards."""
    started: list[Executor] = []

    async def make(**overrides: Any) -> Executor:
        settings = {"python": env_python, **executor_defaults, **overrides}
        executor = Executor(ExecutorConfig(**settings))
        await executor.start()
        started.append(executor)
        return executor

    yield make
    for executor in started:
        await executor.aclose()


@pytest.fixture
async def executor(make_executor: MakeExecutor) -> Executor:
    result: Executor = await make_executor()
    return result


@pytest.fixture
def make_rich_executor(make_executor: MakeExecutor) -> MakeExecutor:
    """``make_executor``'s executors, with the rich fakes (``rich_fakes.HTML``) defined
    in ``default``."""

    async def make(**overrides: Any) -> Executor:
        executor: Executor = await make_executor(**overrides)
        await executor.run(models.Execute(code=HTML))
        return executor

    return make
