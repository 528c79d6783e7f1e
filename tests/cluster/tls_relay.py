"""The machine's Docker engine as a remote engine behind mutual TLS, for a controller pod.

The chart gives its controller Docker access only as ``controller.docker.host`` with
client certificates (``controller.docker.tlsSecret``), never a node's socket. On the
test cluster the engine is the machine's own: this relay listens on the node's address,
accepts only clients whose certificate the test's CA signed, and copies bytes to the
engine's Unix socket. Run as ``python -m tests.cluster.tls_relay``; certificates by
:func:`make_certificates` (openssl, as ``scripts/k8s-testbed`` makes the cluster's).
"""

import argparse
import asyncio
import contextlib
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from beephost_core.stream_relay import relay_connection


@dataclass(frozen=True)
class Certificates:
    """A CA, the relay's server pair and the controller's client pair, as PEM files
    named as Docker's ``DOCKER_CERT_PATH`` wants them (ca.pem, cert.pem, key.pem)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def client_files(self) -> dict[str, bytes]:
        """What the controller's Secret holds: Docker's three client file names."""
        return {
            name: (self.directory / name).read_bytes()
            for name in ("ca.pem", "cert.pem", "key.pem")
        }


def make_certificates(directory: Path, server_ip: str) -> Certificates:
    """A fresh CA, a server certificate for ``server_ip`` and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], cwd=directory, capture_output=True, check=True
        )

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=beephost-test-docker-ca", "-keyout", "ca-key.pem", "-out", "ca.pem",
    )  # fmt: skip
    for name, subject, extensions in (
        (
            "server",
            "/CN=beephost-test-docker",
            f"extendedKeyUsage=serverAuth\nsubjectAltName=IP:{server_ip}\n",
        ),
        ("client", "/CN=beephost-test-controller", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{name}.ext").write_text(extensions)
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}-cert.pem",
        )  # fmt: skip
    # Docker's client file names.
    (directory / "cert.pem").write_bytes((directory / "client-cert.pem").read_bytes())
    (directory / "key.pem").write_bytes((directory / "client-key.pem").read_bytes())
    return Certificates(directory)


async def _serve(host: str, port: int, context: ssl.SSLContext, target: str) -> None:
    # The project's own relay (a backend's published port) copies the bytes; over TLS
    # there is no half-close, so the first side to end ends the connection.
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await relay_connection(reader, writer, target)

    server = await asyncio.start_server(handle, host, port, ssl=context)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--certificates", required=True, type=Path)
    parser.add_argument("--to", default="/var/run/docker.sock")
    args = parser.parse_args()
    certificates = Certificates(args.certificates)
    context = ssl.create_default_context(
        ssl.Purpose.CLIENT_AUTH, cafile=certificates.ca
    )
    context.verify_mode = (
        ssl.CERT_REQUIRED
    )  # no certificate of the test's CA: no engine
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    host, _, port = args.listen.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, int(port), context, args.to))


if __name__ == "__main__":
    main()
