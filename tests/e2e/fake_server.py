"""One server of the fake internet (tests/e2e/fake_internet.py), stdlib only: it runs
in a container of the session's base image (its Debian python3).

    python3 fake_server.py NAME [--http PORT] [--https PORT --cert PEM] [--tcp PORT]

Every HTTP(S) request is answered 200 with JSON: the server's name, the scheme, the
method, the path, the request's headers and the SHA-256 of its ``Authorization``
header (never the header itself), so a test sees what arrived (a secret the proxy put
in, or the marker the sandbox sent) without the secret travelling back. ``--tcp`` is a plain service that writes
``NAME\\n`` to whoever connects (the internal service no sandbox may reach).
"""

import argparse
import hashlib
import json
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(name: str, scheme: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            # Never echoed: what arrived is said by its digest, so a secret the proxy
            # put in never travels back into the sandbox (nor into this log).
            authorization = headers.pop("Authorization", None)
            reply = {
                "server": name,
                "scheme": scheme,
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "authorization_sha256": None
                if authorization is None
                else hashlib.sha256(authorization.encode()).hexdigest(),
                "body": body.decode(errors="replace"),
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            print(f"{scheme} {self.address_string()} {format % args}", flush=True)

    return Handler


class TLSServer(ThreadingHTTPServer):
    """HTTPS whose handshake happens in the request's own thread (a client that never
    finishes it holds up no one else)."""

    context: ssl.SSLContext

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            print(f"https handshake from {client_address}: {exc}", flush=True)
            return
        super().finish_request(wrapped, client_address)


class Greeter(socketserver.BaseRequestHandler):
    greeting = b""

    def handle(self) -> None:
        self.request.sendall(self.greeting)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--http", type=int)
    parser.add_argument("--https", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--tcp", type=int)
    args = parser.parse_args()
    servers: list[socketserver.BaseServer] = []
    if args.http:
        servers.append(ThreadingHTTPServer(("", args.http), handler(args.name, "http")))
    if args.https:
        secure = TLSServer(("", args.https), handler(args.name, "https"))
        secure.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        secure.context.load_cert_chain(args.cert)
        servers.append(secure)
    if args.tcp:
        Greeter.greeting = f"{args.name}\n".encode()
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        servers.append(socketserver.ThreadingTCPServer(("", args.tcp), Greeter))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{args.name} serving", flush=True)
    # Until the container is stopped.
    threading.Event().wait()


if __name__ == "__main__":
    main()
