"""``/api/v1/images``: the disk environment images take, and pruning the unused ones."""

from collections.abc import Mapping

from beephost_controller.deps import BackendsDep, ServiceDep
from beephost_controller.disk import ImageUse, image_uses, prune
from beephost_controller.routes import resource_router
from beephost_controller.schemas.images import ImagePublic, ImagesPublic, PruneResult

# The controller's own token only: not in an admin backend's scope.
router = resource_router("/api/v1/images", "images")


def _public(use: ImageUse, code_volumes: Mapping[str, int]) -> ImagePublic:
    image = use.image
    return ImagePublic(
        id=image.id,
        tags=list(image.tags),
        size=image.size,
        code_volumes_bytes=code_volumes.get(image.id, 0),
        environments=list(use.environments),
    )


def _disk(image: ImagePublic) -> int:
    return image.size + image.code_volumes_bytes


@router.get("")
def list_images(service: ServiceDep, backends: BackendsDep) -> ImagesPublic:
    """This controller's environment images, the disk they (and their code volumes)
    take, and who uses them."""
    code = backends.engine.image_disk_use()
    uses = image_uses(service.store, service.builder, service.settings.name)
    images = [_public(use, code) for use in uses]
    return ImagesPublic(
        images=images,
        total_bytes=sum(_disk(image) for image in images),
        unused_bytes=sum(_disk(image) for image in images if not image.environments),
    )


@router.post("/prune")
def prune_images(service: ServiceDep, backends: BackendsDep) -> PruneResult:
    """Remove every environment image no environment uses (409 while a job runs),
    and the code volumes of the images gone."""
    code = backends.engine.image_disk_use()
    removed = [
        _public(ImageUse(image, ()), code)
        for image in prune(service.store, service.builder, service.settings.name)
    ]
    backends.engine.release_images(service.store.environment_images())
    return PruneResult(
        removed=removed, freed_bytes=sum(_disk(image) for image in removed)
    )
