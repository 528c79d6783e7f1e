#!/bin/sh
# Installs a server's wheelhouse into /opt/beephost, offline: the build stage of every
# service Dockerfile (the three backends and the controller) runs it, so the steps are
# written once. The wheelhouse step (scripts/build-images, the controller's image
# builds) copies this file into the wheelhouse, which the Dockerfiles COPY to /wheels.
#   sh /wheels/install-server.sh MODULE...   # then imports each MODULE as a check
# uv (the host's binary, copied into the wheelhouse) installs in about 1.5 s; without it
# the base's bundled pip wheel does the same in about 4 s.
set -eu
minor="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$minor" != "$(cat /wheels/python-minor)" ]; then
    echo "the wheelhouse is for CPython $(cat /wheels/python-minor), the base has $minor" >&2
    exit 1
fi
python3 -m venv --without-pip /opt/beephost
if [ -x /wheels/uv ]; then
    UV_CACHE_DIR=/tmp/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never \
    /wheels/uv pip install --quiet --python /opt/beephost/bin/python \
        --offline --no-index --find-links /wheels --require-hashes --no-build \
        --compile-bytecode --link-mode=copy -r /wheels/requirements.txt
    rm -rf /tmp/uv-cache
else
    for pip_wheel in /usr/share/python-wheels/pip-*.whl; do :; done
    /opt/beephost/bin/python "$pip_wheel/pip" install --quiet --no-cache-dir \
        --disable-pip-version-check --no-index --find-links /wheels \
        --require-hashes --only-binary=:all: -r /wheels/requirements.txt
fi
# The server's modules import: a wheel missing from the lock fails the build, not a start.
/opt/beephost/bin/python -c \
    'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' "$@"
