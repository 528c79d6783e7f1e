"""The image pipeline's errors: one base class, one subclass per image family."""


class ImageError(Exception):
    """An image could not be prepared, built, pulled or verified."""


class BaseImageError(ImageError):
    """A base image could not be built, pulled or verified."""


class BackendImageError(ImageError):
    """A backend, servers or environment image could not be prepared or built."""
