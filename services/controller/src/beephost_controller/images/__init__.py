"""The image pipeline: base, backend, servers and environment images, built offline.

``ensure.ensure(recipe)`` finds an image by its content key or builds it under a lock,
moves its aliases and retires the image it replaced; each image kind is a recipe.

- ``ensure``: the one find / lock / build / alias / retire recipe runner.
- ``inputs``: ``BuildInputs``, what every build of one caller shares (workspace,
  cache, tools, labels, repository prefix).
- ``keys``: the one content-key scheme (what goes into a key), tags, source hashes.
- ``labels``: the ``io.beephost.*`` labels and kinds, and their checks.
- ``layout``: the image contract (kinds, server venvs, user, ports, commands, paths).
- ``errors``: ``ImageError`` and its two subclasses.
- ``rootfs``: Debian root filesystems with mmdebstrap, and their checks.
- ``base_source`` / ``base``: where a base image comes from / its recipe.
- ``dockerfile``: Dockerfile text split into instructions and checked.
- ``lockfile``: locked requirements as typed pins.
- ``wheelhouse``: the uv driver and the wheel pool.
- ``backend_plan`` / ``backend``: what decides a backend image / its recipe.
- ``servers``: the three servers in one image, per base image.
- ``install`` / ``environment``: an environment's install step / its recipe.
- ``builder``: ``DockerImageBuilder``, the ``ImageBuilder`` port.

Nothing is imported at package import: modules are imported by name.
"""
