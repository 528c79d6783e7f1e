"""Code volumes: a backend image's /usr and /opt, served from read-only volumes.

On some storage drivers every container reads its image's files afresh:
``fuse-overlayfs`` (rootless engines) gives each container a mount of its own, with
page cache of its own, and ``vfs`` a copy. A cold start there spent about a third of
its time reading the interpreter, the servers' venvs and their libraries through it
(measured: container start to the first ``1+1``, http 754 -> 554 ms, rpc 908 -> 561,
pipe 649 -> 518, when /usr and /opt came from volumes), and each idle backend held a
private copy of what it had read. A volume is a plain directory of the engine's disk:
its pages are cached once for every container that mounts it.

So, once per image, the engine copies the image's /usr and /opt into two volumes (its
copy of an image's content into an empty volume, made by a container whose check, the
image's interpreter run from the volumes, proves the copy and measures it), and a
third, empty, volume marks the copy complete and carries its size on disk: a fill that
a crash cut short has no marker and is made again. Backends of the image mount the two
read-only. The first start of an image asks for the fill, in the background; a start
someone waits for does not wait for the copy (it runs without them), a pool's member
does (no one waits for it). Volumes carry the controller's labels
and the image's id, and are named by it; they go when their image does
(``remove_unused``).
"""

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from beephost_controller.images.layout import ENV_PYTHON
from beephost_controller.ports import BackendContainers, ContainerEngineError
from beephost_controller.specs import RunSpec

logger = logging.getLogger(__name__)

#: The image's directories each backend reads from a code volume.
CODE_PATHS = ("/usr", "/opt")
#: Storage drivers whose containers share no page cache of their image's files.
PRIVATE_CACHE_DRIVERS = frozenset({"fuse-overlayfs", "vfs"})
#: The image id a code volume holds a copy of.
LABEL_CODE_IMAGE = "io.beephost.code-volume.image"
#: Which part it is: a directory of ``CODE_PATHS`` (``usr``, ``opt``) or ``complete``.
LABEL_CODE_PART = "io.beephost.code-volume.part"
COMPLETE = "complete"
#: On the marker: the bytes the image's code volumes take on the engine's disk.
LABEL_CODE_BYTES = "io.beephost.code-volume.bytes"
#: What a fill's container runs, from the filled volumes: the bytes the directories
#: take on disk (a file linked twice counted once).
_DISK_USE = """
import os, sys
seen, total = set(), 0
for top in sys.argv[1:]:
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
print(total)
"""
FILL_CHECK = (ENV_PYTHON, "-I", "-c", _DISK_USE, *CODE_PATHS)
#: Seconds a fill of code volumes may take (a copy of /usr and /opt: about 2 s).
FILL_TIMEOUT = 300.0
#: How long a pool member's start, and a shutdown, wait for a fill under way (one
#: takes about 2 s; a large image longer).
CODE_FILL_WAIT = 30.0


def code_volume_key(image_id: str) -> str:
    """What names an image's code volumes: the start of its id (an image reference
    the engine resolves, so a volume names the image it was copied from)."""
    return image_id.removeprefix("sha256:")[:16]


def code_volume_start(prefix: str) -> str:
    """What the name of every code volume of a controller (``prefix``) starts with."""
    return f"{prefix}-code-"


def code_volume_names(prefix: str, key: str) -> dict[str, str]:
    """The code volumes of the image ``key`` -> the directory each holds."""
    marker = marker_name(prefix, key)
    return {f"{marker}{path.replace('/', '-')}": path for path in CODE_PATHS}


def marker_name(prefix: str, key: str) -> str:
    """The empty volume whose existence says the image's code volumes are complete."""
    return f"{code_volume_start(prefix)}{key}"


class CodeVolumes:
    """Each image's code volumes, filled once and shared by its backends.

    Args:
        mode: ``auto`` (on for ``PRIVATE_CACHE_DRIVERS``), ``on`` or ``off``.
        prefix: Names start with it (the controller's own prefix).
        labels: On every volume and fill container (the controller's selector).
        spawn: Runs a fill in the background (a daemon thread by default).
    """

    def __init__(
        self,
        containers: BackendContainers,
        mode: str,
        prefix: str,
        labels: Mapping[str, str],
        *,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._containers = containers
        self._mode = mode
        self._prefix = prefix
        self._labels = dict(labels)
        self._spawn = spawn or _in_thread
        self._enabled: bool | None = None
        #: Image key -> its volumes' mounts, once known complete.
        self._ready: dict[str, dict[str, str]] = {}
        self._filling: set[str] = set()
        self._lock = threading.Condition()

    def enabled(self) -> bool:
        """Whether backends get code volumes (``auto``: the engine's driver decides)."""
        if self._enabled is None:
            if self._mode == "auto":
                try:
                    driver = self._containers.storage_driver()
                except ContainerEngineError as exc:
                    logger.warning("no code volumes: %s", exc)
                    return False  # asked again next time: the engine may be back
                self._enabled = driver in PRIVATE_CACHE_DRIVERS
            else:
                self._enabled = self._mode == "on"
        return self._enabled

    def mounts(self, image: str, wait: float = 0.0) -> dict[str, str]:
        """The code volumes a backend of ``image`` mounts (volume -> directory), or
        none while they are not filled yet: the first ask begins their fill, and
        waits up to ``wait`` seconds for it (a pool's member, which no one waits
        for, mounts them from its start so)."""
        if not self.enabled():
            return {}
        try:
            image_id = self._containers.image_id(image)
            if image_id is None:
                return {}  # the start fails on its own, with the engine's words
            key = code_volume_key(image_id)
            with self._lock:
                if key not in self._ready and key not in self._filling:
                    if marker_name(self._prefix, key) in self._markers():
                        self._ready[key] = code_volume_names(self._prefix, key)
                    else:
                        self._filling.add(key)
                        self._spawn(lambda: self._fill(image, image_id))
                if wait:
                    self._lock.wait_for(lambda: key not in self._filling, wait)
                return dict(self._ready.get(key, {}))
        except ContainerEngineError as exc:
            logger.warning("no code volumes for %s: %s", image, exc)
            return {}

    def owns(self, volume: str) -> bool:
        """Whether ``volume`` (one of this controller's) is a code volume."""
        return volume.startswith(code_volume_start(self._prefix))

    def _markers(self) -> dict[str, dict[str, str]]:
        return self._containers.list_volumes(
            {**self._labels, LABEL_CODE_PART: COMPLETE}
        )

    def disk_use(self) -> dict[str, int]:
        """Image id -> the bytes its complete code volumes take on disk (none when
        the engine cannot say: logged)."""
        try:
            markers = self._markers()
        except ContainerEngineError as exc:
            logger.warning("could not read the code volumes' disk use: %s", exc)
            return {}
        return {
            labels[LABEL_CODE_IMAGE]: int(labels.get(LABEL_CODE_BYTES) or 0)
            for labels in markers.values()
            if LABEL_CODE_IMAGE in labels
        }

    def _fill(self, image: str, image_id: str) -> None:
        key = code_volume_key(image_id)
        names = code_volume_names(self._prefix, key)
        own = {**self._labels, LABEL_CODE_IMAGE: image_id}
        try:
            self._remove(key)  # what a fill that a crash cut short left
            for name, path in names.items():
                self._containers.create_volume(
                    name, {**own, LABEL_CODE_PART: path.strip("/")}
                )
            said = self._containers.fill_volumes(
                RunSpec(
                    image,
                    FILL_CHECK,
                    labels=self._labels,
                    volumes=names,
                    timeout=FILL_TIMEOUT,
                )
            ).strip()
            if not said.isdigit():
                raise ContainerEngineError(f"the fill's check said {said!r}")
            marker = {**own, LABEL_CODE_PART: COMPLETE, LABEL_CODE_BYTES: said}
            self._containers.create_volume(marker_name(self._prefix, key), marker)
        except ContainerEngineError as exc:
            logger.warning("could not fill the code volumes of %s: %s", image, exc)
            self._remove_quietly(key)
            with self._lock:
                self._filling.discard(key)
                self._lock.notify_all()
            return
        logger.info("code volumes of %s filled: %s", image, ", ".join(names))
        with self._lock:
            self._filling.discard(key)
            self._ready[key] = names
            self._lock.notify_all()

    def _remove(self, key: str) -> None:
        # The marker first: a removal cut short leaves an incomplete fill, which is
        # made again, not a complete-looking one.
        self._containers.remove_volume(marker_name(self._prefix, key))
        for name in code_volume_names(self._prefix, key):
            self._containers.remove_volume(name)

    def _remove_quietly(self, key: str) -> bool:
        try:
            self._remove(key)
        except ContainerEngineError as exc:  # in use by a backend: kept
            logger.warning("kept the code volumes of image %s: %s", key, exc)
            return False
        return True

    def remove_unused(self, used: Iterable[str]) -> list[str]:
        """Remove the code volumes of every image that none of ``used`` (the images
        this controller's environments name) is: gone, or another controller's that
        none of its environments uses any more. Those a backend still mounts stay.
        Returns the keys of the images whose volumes went."""
        start = code_volume_start(self._prefix)
        removed = []
        try:
            kept = {
                code_volume_key(image_id)
                for tag in set(used)
                if (image_id := self._containers.image_id(tag)) is not None
            }
            markers = self._markers()
            gone = [
                key
                for marker in markers
                if marker.startswith(start)
                and (key := marker.removeprefix(start)) not in kept
            ]
        except ContainerEngineError as exc:  # the next removal tries again
            logger.warning("could not look for unused code volumes: %s", exc)
            return []
        for key in gone:
            with self._lock:
                if key in self._filling:
                    continue
                self._ready.pop(key, None)
            if self._remove_quietly(key):
                removed.append(key)
        return removed

    def wait_filled(self, timeout: float) -> bool:
        """Wait until no fill is under way (a shutdown: a fill cut short would leave
        its container behind), at most ``timeout`` seconds; whether none is."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._filling, timeout)

    def remove_all(self, wait: float) -> None:
        """Remove every code volume of this controller's (at its shutdown, with its
        backends), after the fills under way end (at most ``wait`` seconds)."""
        with self._lock:
            self.wait_filled(wait)
            self._ready.clear()
            try:
                found = self._containers.list_volumes(self._labels)
            except ContainerEngineError as exc:
                logger.warning("could not remove the code volumes: %s", exc)
                return
            # Markers first, as in _remove.
            for name in sorted(
                found, key=lambda n: found[n].get(LABEL_CODE_PART) != COMPLETE
            ):
                if self.owns(name):
                    try:
                        self._containers.remove_volume(name)
                    except ContainerEngineError as exc:
                        logger.warning("kept code volume %s: %s", name, exc)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="code-volumes", daemon=True).start()
