"""Warm pools: ready, unclaimed backends per environment and type, claimed by starts."""

from fastapi import status

from beephost_controller.backends.warm_pools import PoolState
from beephost_controller.deps import PoolsDep
from beephost_controller.routes import resource_router
from beephost_controller.schemas import BackendType
from beephost_controller.schemas.pools import PoolPublic, PoolSet

router = resource_router("/api/v1", "pools")


def pool_public(state: PoolState) -> PoolPublic:
    return PoolPublic.model_validate(state, from_attributes=True)


@router.get("/pools")
def list_pools(pools: PoolsDep) -> list[PoolPublic]:
    """Every pool in effect, with how many members are ready and starting."""
    return [pool_public(state) for state in pools.states()]


@router.get("/environments/{name}/pools")
def environment_pools(name: str, pools: PoolsDep) -> list[PoolPublic]:
    """An environment's pools in effect (its own settings and the defaults)."""
    pools.store.existing_environment(name)
    return [pool_public(state) for state in pools.states(name)]


@router.put("/environments/{name}/pools/{kind}")
def set_pool(
    name: str, kind: BackendType, body: PoolSet, pools: PoolsDep
) -> PoolPublic:
    """Keep `size` backends of this type started, ready and unclaimed (0: none).

    A start of this environment and type claims one when it names no token, port or
    bind address, and exactly the pool's limits and options (none: the defaults);
    the pool is refilled in the background. Members are replaced when the setting
    changes.
    """
    return pool_public(
        pools.configure(name, kind, body.size, body.limits, body.options)
    )


@router.delete(
    "/environments/{name}/pools/{kind}", status_code=status.HTTP_204_NO_CONTENT
)
def reset_pool(name: str, kind: BackendType, pools: PoolsDep) -> None:
    """Drop the environment's own setting: the controller's POOL_SIZE applies."""
    pools.reset(name, kind)
