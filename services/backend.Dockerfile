# The three backends' image, one file: KIND (pipe, http or rpc) picks the server.
#   pipe: the execution core behind a Unix socket in /run/beephost (mount a volume or a
#         directory there: the root is read-only and clients share the socket).
#   http: FastAPI/uvicorn on port 5678; rpc: grpc.aio on port 50051 (standard health
#         and reflection). Both bind every interface inside the container: publish them
#         on 127.0.0.1 only from the host, and set BEEPHOST_<KIND>_BACKEND_TOKEN (or
#         _TOKEN_SHA256) at run time; the HTTP server refuses to listen beyond loopback
#         without one, and without one whoever reaches the gRPC port runs code.
#
# Built from the repository root, offline, from a wheelhouse the host prepares (uv.lock
# pins and hashes every wheel; our packages are built with `uv build`):
#   scripts/build-images --backend http                  # what the controller does
#   scripts/build-images --backend http --export-wheelhouse   # prints the build args
#   docker build --network=none -f services/backend.Dockerfile --build-arg KIND=http \
#     --build-arg SETTINGS_PREFIX=BEEPHOST_HTTP_BACKEND_ ... .
# The per-kind arguments are written once, in the controller's image contract
# (beephost_controller.images.layout.backend_dockerfile_args).
# The legacy builder (docker-py) must build it: no "# syntax=" line (BuildKit would pull
# a frontend image), no RUN --mount. Nothing here touches the network. So STYLE R23's
# `uv sync` with bind-mounted lock files is out: uv.lock is applied on the host instead
# (`uv export --locked`, every wheel hash-checked here). Exec-form ENTRYPOINT and
# HEALTHCHECK take no build arguments: the build stage links the kind's console script
# to a name every kind shares.
#
# Run hardened: --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges.
# User code runs under /usr/bin/python3 -I: the server's packages in /opt/beephost are
# not importable by it.

ARG BASE_IMAGE=beephost/python:3.11

# -- build: install the wheelhouse into /opt/beephost -----------------------------------
FROM ${BASE_IMAGE} AS build
# The legacy builder commits every instruction (about 1 s each here): few, merged ones.
ARG KIND BUILD_KEY=manual
# Labels every intermediate image of this stage, so the builder removes them by key.
LABEL io.beephost.kind=backend-build io.beephost.build.key=${BUILD_KEY}
COPY build/wheelhouse/${KIND}-backend/ /wheels/
# The install steps every service shares (services/install-server.sh, carried by the
# wheelhouse) and an import of the server as a check; the code of the dataclasses its
# boot makes, compiled now rather than at every start (beephost_core.dataclass_code);
# then the shared name.
RUN set -eu; \
    sh /wheels/install-server.sh "beephost_${KIND}_backend.__main__"; \
    boot="$(/opt/beephost/bin/python -c "from beephost_${KIND}_backend.__main__ import BOOT_MODULES; print(*BOOT_MODULES)")"; \
    /opt/beephost/bin/python -m beephost_core.dataclass_code $boot; \
    ln -s "beephost-${KIND}-backend" /opt/beephost/bin/beephost-backend; \
    test -x /opt/beephost/bin/beephost-backend

# -- final: the base image, the server's venv, a non-root user ---------------------------
FROM ${BASE_IMAGE}
ARG KIND SETTINGS_PREFIX LISTEN_SETTING LISTEN_VALUE PORTS \
    PYTHON_VERSION=unknown CODE_VERSION=unknown BUILD_KEY=manual
LABEL io.beephost.managed="true" \
      io.beephost.kind="backend-image" \
      io.beephost.backend="${KIND}" \
      io.beephost.python.version="${PYTHON_VERSION}" \
      io.beephost.code.version="${CODE_VERSION}" \
      io.beephost.build.key="${BUILD_KEY}" \
      org.opencontainers.image.title="beephost-${KIND}-backend" \
      org.opencontainers.image.description="Beep Python Host ${KIND} backend: the execution core as a server" \
      org.opencontainers.image.version="${CODE_VERSION}" \
      org.opencontainers.image.vendor="Beep Python Host"
COPY --from=build /opt/beephost /opt/beephost
# One layer: the compiled stdlib (the Debian rootfs has no .pyc and a read-only root
# cannot cache them: each session worker would spend 220 ms instead of 85 importing),
# a named user and group for getpwuid(), the workspace (user code's cwd and HOME; a
# per-backend volume is mounted on it), /packages (run-time installs go to its site/,
# on sys.path; a volume is mounted on it) and the pipe socket's directory (a fresh
# named volume mounted on it copies its owner and mode).
RUN set -eu; \
    python3 -m compileall -q -j 0 "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" > /dev/null; \
    echo 'beephost:x:10001:10001:Beep Python Host:/workspace:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'beephost:x:10001:' >> /etc/group; \
    mkdir -p -m 0700 /workspace; \
    chown 10001:10001 /workspace; \
    mkdir -p /packages/site; \
    chown -R 10001:10001 /packages; \
    mkdir -p -m 0770 /run/beephost; \
    chown 10001:10001 /run/beephost
# /opt/beephost/bin stays off PATH: the workers inherit PATH, and `python3` there must
# be the bare interpreter, not the server's venv. Ports are the servers' defaults.
ENV HOME=/workspace \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ${SETTINGS_PREFIX}PYTHON=/usr/bin/python3 \
    ${SETTINGS_PREFIX}WORKER_CWD=/workspace \
    ${SETTINGS_PREFIX}WORKSPACE_DIR=/workspace \
    ${SETTINGS_PREFIX}PACKAGES_DIR=/packages/site \
    ${SETTINGS_PREFIX}METRICS_HOST=0.0.0.0 \
    ${SETTINGS_PREFIX}${LISTEN_SETTING}=${LISTEN_VALUE}
EXPOSE ${PORTS}
USER 10001:10001
# Engine 20.10 knows no --start-interval: the first probe runs one interval after the
# start, so the interval is short. The subcommand is stdlib-only (only `serve` imports
# the server), so a probe every 5 s stays cheap inside the container's limits.
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/beephost/bin/beephost-backend", "healthcheck"]
# `serve` is the default subcommand; `docker run IMAGE healthcheck` runs the other one.
ENTRYPOINT ["/opt/beephost/bin/beephost-backend"]
