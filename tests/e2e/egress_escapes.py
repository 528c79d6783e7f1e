"""Every way out of an allow-list sandbox that must be refused, as one table: the code
user code runs (through the SDK), and the error it must get.

tests/e2e/test_egress.py runs each row in a sandbox on the fake internet
(tests/e2e/fake_internet.py), on a controller process and on the compose system; the
reliability suite's hostile-code table (tests/reliability/test_hostile_egress.py) runs
them again in each backend type and checks the backend still serves.

Each row's code ends with ``_outcome(action)``: the action's result, or its exception
as ``Type: message`` (an HTTP error with its status and body, where the proxy says why),
and how long it took; ``expect`` is a regular expression the outcome must match. Every
refusal must come fast (``FAST`` seconds): a refused connection never waits for a
timeout.
"""

import re
from dataclasses import dataclass

#: Seconds within which every refusal must come.
FAST = 10.0

#: Run first in the sandbox: the helpers every row's code uses (stdlib only).
PRELUDE = r"""
import base64, json, os, socket, ssl, time, urllib.error, urllib.parse, urllib.request


def _outcome(action):
    started = time.monotonic()
    try:
        text = f"ok: {action()}"
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        text = f"HTTPError {exc.code}: {body}"
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
    return {"outcome": text, "seconds": round(time.monotonic() - started, 3)}


def _proxy(user=None, token=None):
    # The sandbox's proxy from its variables; another credential, or none, if asked.
    url = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
    user = url.username if user is None else user
    token = url.password if token is None else token
    where = f"{url.hostname}:{url.port}"
    return f"http://{user}:{token}@{where}" if user else f"http://{where}"


def _through(url, user=None, token=None):
    # Through the proxy even for what NO_PROXY names (urllib's ProxyHandler would
    # still bypass it): an absolute-form request written to the proxy itself.
    import http.client, io
    proxy = urllib.parse.urlsplit(_proxy(user, token))
    headers = {}
    if proxy.username:
        pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    connection = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=10)
    try:
        connection.request("GET", url, headers=headers)
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    if reply.status >= 400:
        raise urllib.error.HTTPError(url, reply.status, reply.reason, reply.headers, io.BytesIO(body))
    return reply.status


def _get(url):
    # As plain user code does: the proxy variables, urllib.
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status


def _connect(host, port):
    socket.create_connection((host, port), timeout=5).close()
    return "connected"


def _tunnel(host, port, server_name):
    # A CONNECT with the sandbox's own credential, then TLS naming another server.
    url = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    credential = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
    raw = socket.create_connection((url.hostname, url.port), timeout=10)
    raw.sendall(
        f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Proxy-Authorization: Basic {credential}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(4096)
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"CONNECT answered {head[:40]!r}")
    context = ssl.create_default_context()
    with context.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\n\r\n".encode())
        return tls.recv(100)
"""


#: Everything user code can read: its environment, every process's environment and
#: command line, and every file it may open (not /proc, /sys, /dev).
FIND_SECRET = """
def _scan(needle):
    found, files = [], 0
    if any(needle in v.encode() for v in os.environ.values()):
        found.append("os.environ")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if needle in f.read():
                        found.append(f"/proc/{pid}/{part}")
            except OSError:
                pass
    for top, dirs, names in os.walk("/"):
        if top == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
        for name in names:
            path = os.path.join(top, name)
            try:
                if not os.path.isfile(path) or os.path.getsize(path) > 64 << 20:
                    continue
                with open(path, "rb") as f:
                    files += 1
                    if needle in f.read():
                        found.append(path)
            except OSError:
                pass
    return {"found": found, "files": files}
"""


@dataclass(frozen=True)
class Escape:
    """One way out: what it tries, its code (a template over ``Where``'s fields) and
    the outcome it must get (a regular expression, the same template)."""

    case: str
    code: str
    expect: str

    def render(self, where: "Where") -> tuple[str, re.Pattern[str]]:
        values = {k: str(v) for k, v in vars(where).items()}
        escaped = {k: re.escape(v) for k, v in values.items()}
        return self.code.format(**values), re.compile(self.expect.format(**escaped))


@dataclass(frozen=True)
class Where:
    """The addresses and ports one world's rows name."""

    #: api.allowed.test's address on the fake internet.
    api: str
    #: The fake internet's gateway: this host.
    gateway: str
    #: The private address private.test resolves to.
    private: str
    #: The controller's port (on the host's loopback).
    controller_port: int
    #: Another sandbox's published port (on the host's loopback).
    neighbour_port: int


def _403(reason: str) -> str:
    return r"HTTPError 403: beephost egress: refused: .*" + reason


UNREACHABLE = r"OSError: \[Errno 101\] Network is unreachable"

ESCAPES: tuple[Escape, ...] = (
    # -- through the proxy: refused by the allow-list ------------------------------
    Escape(
        "HTTPS to a name not on the list (requests)",
        "import requests\n"
        "_outcome(lambda: requests.get('https://elsewhere.test/', timeout=10))",
        r"ProxyError: .*403",
    ),
    Escape(
        "HTTP to a name not on the list (urllib)",
        "_outcome(lambda: _get('http://elsewhere.test/'))",
        _403(r"'elsewhere\.test' is not on the allow-list"),
    ),
    Escape(
        "the internal service through the proxy",
        "_outcome(lambda: _get('http://internal.test:8080/'))",
        _403(r"'internal\.test' is not on the allow-list"),
    ),
    Escape(
        "CONNECT to an allowed name on another port",
        "import requests\n"
        "_outcome(lambda: requests.get('https://other.test:8443/', timeout=10))",
        r"ProxyError: .*403",
    ),
    Escape(
        "HTTP to an allowed name on another port",
        "_outcome(lambda: _get('http://other.test:8080/'))",
        _403(r"port 8080 is not allowed for 'other\.test'"),
    ),
    Escape(
        "an address through the proxy",
        "_outcome(lambda: _get('http://{api}/'))",
        _403(r"the address '{api}' is not on the allow-list"),
    ),
    Escape(
        "an IPv6 address through the proxy",
        "_outcome(lambda: _through('http://[2001:db8::1]/'))",
        _403(r"the address '2001:db8::1' is not on the allow-list"),
    ),
    Escape(
        "the controller through the proxy",
        "_outcome(lambda: _through('http://{gateway}:{controller_port}/'))",
        _403(r"the address '{gateway}' is not on the allow-list"),
    ),
    Escape(
        "another sandbox through the proxy",
        "_outcome(lambda: _through('http://127.0.0.1:{neighbour_port}/'))",
        _403(r"the address '127\.0\.0\.1' is not on the allow-list"),
    ),
    # -- through the proxy: names that resolve where no sandbox may go -------------
    Escape(
        "a name that resolves to loopback",
        "_outcome(lambda: _get('http://loopback.test/'))",
        _403(r"'loopback\.test' resolves to 127\.0\.0\.1 is a loopback address"),
    ),
    Escape(
        "a name that resolves to the controller's host",
        "_outcome(lambda: _get('http://controller.test/'))",
        _403(r"'controller\.test' resolves to {gateway} is the controller's"),
    ),
    Escape(
        "a name that resolves to the metadata server",
        "_outcome(lambda: _get('http://metadata.test/'))",
        _403(
            r"'metadata\.test' resolves to 169\.254\.169\.254 is a cloud metadata address"
        ),
    ),
    Escape(
        "a name that resolves to a private address",
        "_outcome(lambda: _get('http://private.test/'))",
        _403(r"'private\.test' resolves to {private} is a private address"),
    ),
    Escape(
        "a name with a good and a loopback answer (HTTP)",
        "_outcome(lambda: _get('http://rebind.test/'))",
        _403(r"'rebind\.test' resolves to 127\.0\.0\.1 is a loopback address"),
    ),
    Escape(
        "a name with a good and a loopback answer (CONNECT)",
        "import requests\n"
        "_outcome(lambda: requests.get('https://rebind.test/', timeout=10))",
        r"ProxyError: .*403",
    ),
    # -- the proxy's credential ------------------------------------------------------
    Escape(
        "no proxy credential",
        "_outcome(lambda: _through('http://other.test/', user=''))",
        r"HTTPError 407: beephost egress: no valid proxy credential",
    ),
    Escape(
        "a guessed proxy credential",
        "_outcome(lambda: _through('http://other.test/', token='guessed-token'))",
        r"HTTPError 407: beephost egress: no valid proxy credential",
    ),
    # -- around the proxy: no interface, no DNS ------------------------------------
    Escape(
        "a direct connect to a server's address",
        "_outcome(lambda: _connect('{api}', 443))",
        UNREACHABLE,
    ),
    Escape(
        "a raw socket to an outside address",
        "_outcome(lambda: socket.socket().connect(('1.1.1.1', 443)))",
        UNREACHABLE,
    ),
    Escape(
        "UDP",
        "_outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        ".sendto(b'x', ('8.8.8.8', 53)))",
        UNREACHABLE,
    ),
    Escape(
        "a DNS lookup",
        "_outcome(lambda: socket.getaddrinfo('api.allowed.test', 443))",
        r"gaierror: \[Errno -?\d+\] .*(resolution|not known|service not known)",
    ),
    Escape(
        "requests ignoring the proxy variables",
        "import requests\n"
        "_session = requests.Session()\n"
        "_session.trust_env = False\n"
        "_outcome(lambda: _session.get('https://api.allowed.test/', timeout=10))",
        r"ConnectionError: .*(NameResolutionError|resolution|not known)",
    ),
    Escape(
        "IPv6",
        "_outcome(lambda: _connect('2606:4700:4700::1111', 443))",
        r"OSError: \[Errno (101|99|97)\] (Network is unreachable|Cannot assign"
        r" requested address|Address family not supported)",
    ),
    Escape(
        "the controller's port on this host",
        "_outcome(lambda: _connect('{gateway}', {controller_port}))",
        UNREACHABLE,
    ),
    Escape(
        "the controller's port on loopback",
        "_outcome(lambda: _connect('127.0.0.1', {controller_port}))",
        r"ConnectionRefusedError: \[Errno 111\]",
    ),
    Escape(
        "another sandbox's port on this host",
        "_outcome(lambda: _connect('{gateway}', {neighbour_port}))",
        UNREACHABLE,
    ),
    Escape(
        "another sandbox's port on loopback",
        "_outcome(lambda: _connect('127.0.0.1', {neighbour_port}))",
        r"ConnectionRefusedError: \[Errno 111\]",
    ),
    # -- domain fronting -------------------------------------------------------------
    Escape(
        "an SNI that differs from the CONNECT name",
        "_outcome(lambda: _tunnel('other.test', 443, 'api.allowed.test'))",
        r"(SSLEOFError|SSLZeroReturnError|ConnectionResetError|SSLError|"
        r"BrokenPipeError): .*(EOF|reset|closed|Broken pipe|UNEXPECTED_EOF)",
    ),
)

#: Row ids for pytest (short, stable).
IDS = [re.sub(r"[^a-z0-9]+", "-", escape.case.lower()).strip("-") for escape in ESCAPES]
