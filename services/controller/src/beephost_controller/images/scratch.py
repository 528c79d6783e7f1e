"""``scratch_build``: a build's scratch directory, its errors and its tidy-up, in one place.

Every image build here stages files in a directory under the cache (a context, a
wheelhouse), asks the engine for the build, and must leave nothing behind whatever
happens: the directory goes, and so do the engine's leftovers found by their labels
(a multi-stage build's intermediate images, or the install container a failed commit
left). An engine failure becomes the images' own error, naming the tag.
"""

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from beephost_controller.images.errors import BackendImageError
from beephost_controller.ports import ContainerEngine, ContainerEngineError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def scratch_build(
    runtime: ContainerEngine,
    *,
    tag: str,
    cache_dir: Path,
    prefix: str,
    leftovers: Mapping[str, str],
) -> Iterator[Path]:
    """Yield a fresh directory under ``cache_dir`` for building ``tag``.

    Args:
        runtime: The engine that builds, and removes the leftovers.
        tag: The image being built (named in errors and logs).
        cache_dir: Where the scratch directory is made (the same filesystem as the
            wheel pool, so wheels are hard-linked, not copied).
        prefix: The scratch directory's name prefix (``context-pipe-``...).
        leftovers: The labels of what the build leaves on the engine; removed after
            the build, failed or not (the next build of this key finds the tag, so
            they are cache nobody will hit again).

    Raises:
        BackendImageError: The engine failed inside the block.
    """
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=cache_dir))
    try:
        yield scratch
    except ContainerEngineError as exc:
        raise BackendImageError(f"building {tag} failed: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            runtime.remove_by_labels(dict(leftovers))
        except ContainerEngineError as exc:
            logger.warning("could not remove what building %s left: %s", tag, exc)
