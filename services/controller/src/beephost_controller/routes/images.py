"""``/api/v1/images``: the disk environment images take, and pruning the unused ones."""

from fastapi import APIRouter

from beephost_controller.deps import Authenticated, BackendsDep, ServiceDep
from beephost_controller.disk import ImageUse, image_uses, prune
from beephost_controller.schemas.errors import ERROR_RESPONSES
from beephost_controller.schemas.images import ImagePublic, ImagesPublic, PruneResult

# The controller's own token only: not in an admin backend's scope.
router = APIRouter(
    prefix="/api/v1/images", tags=["images"], dependencies=[Authenticated]
)


def _public(use: ImageUse) -> ImagePublic:
    image = use.image
    return ImagePublic(
        id=image.id,
        tags=list(image.tags),
        size=image.size,
        environments=list(use.environments),
    )


@router.get("", response_model=ImagesPublic, responses=ERROR_RESPONSES)
def list_images(service: ServiceDep) -> ImagesPublic:
    """This controller's environment images, their size and who uses them."""
    images = [_public(use) for use in image_uses(service.store, service.builder)]
    return ImagesPublic(
        images=images,
        total_bytes=sum(image.size for image in images),
        unused_bytes=sum(image.size for image in images if not image.environments),
    )


@router.post("/prune", response_model=PruneResult, responses=ERROR_RESPONSES)
def prune_images(service: ServiceDep, backends: BackendsDep) -> PruneResult:
    """Remove every environment image no environment uses (409 while a job runs),
    and the code volumes of the images gone."""
    removed = [
        _public(ImageUse(image, ())) for image in prune(service.store, service.builder)
    ]
    backends.code_volumes.remove_unused()
    return PruneResult(
        removed=removed, freed_bytes=sum(image.size for image in removed)
    )
