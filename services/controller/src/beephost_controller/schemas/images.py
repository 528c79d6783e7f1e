"""Environment images on disk, and what a prune gives back: reply models."""

from pydantic import Field

from beephost_controller.schemas import ApiModel


class ImagePublic(ApiModel):
    id: str
    tags: list[str]
    size: int = Field(description="Bytes on disk (layers shared with others counted).")
    code_volumes_bytes: int = Field(
        0,
        description="Bytes its code volumes take on the engine's disk besides "
        "(CODE_VOLUMES; 0: none). They go with the image.",
    )
    environments: list[str] = Field(
        description="The environments built into it; none: `prune` removes it."
    )


class ImagesPublic(ApiModel):
    images: list[ImagePublic] = Field(
        description="This controller's environment images."
    )
    total_bytes: int = Field(description="The images' bytes and their code volumes'.")
    unused_bytes: int = Field(description="What `prune` would give back.")


class PruneResult(ApiModel):
    removed: list[ImagePublic] = Field(description="The images removed.")
    freed_bytes: int = Field(description="The removed images' and code volumes' bytes.")
