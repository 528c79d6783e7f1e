"""``DockerPublisher``: the ``ImagePublisher`` on docker-py (``docker push``)."""

from typing import Any

from beephost_controller.engine.docker_errors import mapped_errors
from beephost_controller.ports import ContainerEngineError


class DockerPublisher:
    """Pushes local images to a registry with the engine that holds them.

    The image is tagged ``repository:<its id's first 16 hex digits>`` for the push
    (a tag keyed by content: two pushes of one image are one upload), and the tag is
    removed again: the engine keeps only the image's own names.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, ref: str, repository: str) -> str:
        with mapped_errors(f"inspect {ref}"):
            image = self._client.images.get(ref)
        tag = image.id.removeprefix("sha256:")[:16]
        with mapped_errors(f"tag {ref} as {repository}:{tag}"):
            self._client.api.tag(image.id, repository, tag, force=True)
        try:
            digest = self._push(repository, tag)
        finally:
            with mapped_errors(f"untag {repository}:{tag}"):
                self._client.api.remove_image(f"{repository}:{tag}", noprune=True)
        return f"{repository}@{digest}"

    def _push(self, repository: str, tag: str) -> str:
        digest = None
        with mapped_errors(f"push {repository}:{tag}"):
            # The engine answers with a JSON stream: errors arrive in it, not as a
            # status; the last message's aux carries the manifest's digest.
            for message in self._client.api.push(
                repository, tag=tag, stream=True, decode=True
            ):
                if "error" in message:
                    raise ContainerEngineError(
                        f"push {repository}:{tag}: {message['error']}"
                    )
                digest = (message.get("aux") or {}).get("Digest", digest)
        if not digest:
            raise ContainerEngineError(f"push {repository}:{tag}: no digest reported")
        return str(digest)
