"""The image pipeline: base, backend, servers and environment images, built offline.

One ``ensure(recipe)`` (``ensure``) finds an image by its content key (``keys``) or
builds it under a lock, moves its aliases and retires the image it replaced; each image
kind is one small recipe module (``base`` on ``rootfs``, ``backend``, ``servers``,
``environment``). ``wheelhouse`` drives uv and pools the wheels, ``layout`` is the
contract between the images and the containers started from them, and ``builder``
implements the ``ImageBuilder`` port. Nothing here is imported at package import:
modules are imported by name.
"""
