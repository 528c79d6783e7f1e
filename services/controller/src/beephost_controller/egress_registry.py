"""``EgressRegistry``: which backends the egress proxy lets out, and what it is told.

Every engine's proxy enforces the same configuration (``egress_proxy_config``): the
live allow-list backends, each by its credential's digest, and the values of the
secrets their policies name, read at the moment the configuration is made. This
module keeps that set and makes the configuration; the engine's proxy module
(``engine/docker_egress.py``, ``engine/kube_egress.py``) only delivers it, through the
``publish`` callable, at each change.

It also reads what the proxy reports, the same on every engine: its refusals from its
log lines (``parse_refusals``) and its counters from Prometheus text
(``parse_counts``).
"""

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from beephost_controller.egress_proxy_config import ProxyBackend, ProxyConfig
from beephost_controller.ports import EgressRefusal, LaunchFailed
from beephost_controller.rows import BackendRow
from beephost_controller.schemas.egress import EgressRule
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_protocol.errors import BeepHostError, NotFound, Unavailable

logger = logging.getLogger(__name__)

#: The most refusals the API returns for a backend (its ``limit``'s bound).
MAX_REFUSALS = 100


class EgressRegistry:
    """The live allow-list backends, and the configuration made of them.

    Args:
        secrets: The store the secrets' values are read from at each change.
        blocked: The networks the proxy never reaches (the engine knows them).
        publish: Delivers a new configuration to the proxy (called under the lock,
            so two changes are delivered in their order).
    """

    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore,
        *,
        blocked: Callable[[], list[str]],
        publish: Callable[[ProxyConfig], None],
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.blocked = blocked
        self.publish = publish
        self._backends: dict[str, ProxyBackend] = {}
        self.lock = threading.RLock()

    def register(
        self, backend_id: str, token_sha256: str, allow: Iterable[EgressRule]
    ) -> None:
        """Let ``backend_id`` (its proxy credential's digest) reach ``allow``."""
        with self.lock:
            self._backends[backend_id] = ProxyBackend(
                token_sha256=token_sha256, allow=list(allow)
            )
            self.publish(self.config())

    def unregister(self, backend_id: str) -> None:
        """Forget ``backend_id``: its credential opens nothing any more."""
        with self.lock:
            if self._backends.pop(backend_id, None) is not None:
                self.publish(self.config())

    def rebuild(self, rows: Iterable[BackendRow]) -> bool:
        """The set from the live backends' rows (after a restart of the controller):
        each with an allow-list and a proxy credential. Whether it changed (the
        caller publishes when the proxy may hold another)."""
        with self.lock:
            backends = {
                row.id: ProxyBackend(
                    token_sha256=row.config.egress_token_sha256,
                    allow=list(row.config.egress_allow),
                )
                for row in rows
                if row.config.egress_allow is not None
                and row.config.egress_token_sha256 is not None
            }
            changed = backends != self._backends
            self._backends = backends
            return changed

    @property
    def registered(self) -> frozenset[str]:
        return frozenset(self._backends)

    def config(self) -> ProxyConfig:
        """What the proxy is told now (the secrets' values read at this moment)."""
        with self.lock:
            names = {
                rule.secret.secret
                for backend in self._backends.values()
                for rule in backend.allow
                if rule.secret is not None
            }
            values: dict[str, str] = {}
            for name in sorted(names):
                try:
                    values[name] = self.secrets.value(name)
                except NotFound:
                    # Deleted since its backend started: the proxy refuses that
                    # backend's requests to it (a rule is never sent without it).
                    logger.warning("egress: a policy names secret %s, not stored", name)
            backends = {
                backend_id: _with_secrets(backend, values)
                for backend_id, backend in self._backends.items()
            }
        return ProxyConfig(
            backends=backends,
            secrets=values,
            blocked=self.blocked(),
            internal_ranges=dict(self.settings.egress_internal_ranges),
            hosts={
                name: [answer] if isinstance(answer, str) else list(answer)
                for name, answer in self.settings.egress_hosts.items()
            },
        )


def open_egress(
    ensure: Callable[[], object], registry: EgressRegistry, row: BackendRow
) -> None:
    """An allow-list backend's way out, before its sandbox: the engine's proxy runs
    (``ensure``) and knows its credential and policy.

    Raises:
        LaunchFailed: The proxy cannot be made (nothing of the backend is).
    """
    allow, digest = row.config.egress_allow, row.config.egress_token_sha256
    if allow is None or digest is None:
        return
    try:
        ensure()
        registry.register(row.id, digest, allow)
    # The image pipeline's errors too (ImageError): the start fails typed.
    except Exception as exc:
        registry.unregister(row.id)
        error = (
            exc
            if isinstance(exc, BeepHostError)
            else Unavailable(
                f"the egress proxy could not be started: {exc}",
                {"egress": "allow_list"},
            )
        )
        raise LaunchFailed(error, undone=True) from exc


def ensure_quietly(ensure: Callable[[], object]) -> None:
    """Make the proxy run after a restart of the controller, a failure logged (the
    next allow-list start makes it again, and says why if it cannot)."""
    try:
        ensure()
    except Exception as exc:  # the engine's, the image pipeline's, the disk's
        logger.warning("the egress proxy could not be started: %s", exc)


def in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="beephost-egress", daemon=True).start()


def _with_secrets(backend: ProxyBackend, values: dict[str, str]) -> ProxyBackend:
    """The backend without the rules whose secret is not stored."""
    kept = [r for r in backend.allow if r.secret is None or r.secret.secret in values]
    if len(kept) == len(backend.allow):
        return backend
    return ProxyBackend(token_sha256=backend.token_sha256, allow=kept)


def parse_refusals(log: str, backend_id: str, limit: int = 10) -> list[EgressRefusal]:
    """The last ``limit`` refusals of ``backend_id`` in the proxy's output (the
    engine's RFC 3339 timestamps first on each line, then whatever mitmdump prints
    before the JSON object the addon logs)."""
    found: list[EgressRefusal] = []
    for line in log.splitlines():
        brace = line.find("{")
        if brace < 0:
            continue
        try:
            event = json.loads(line[brace:])
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "egress":
            continue
        if event.get("backend") != backend_id or event.get("decision") != "refused":
            continue
        found.append(
            EgressRefusal(
                at=_timestamp(line[:brace]),
                kind=str(event.get("kind", "")),
                destination=str(event.get("destination", "")),
                reason=str(event.get("reason", "")),
            )
        )
    found.sort(key=lambda refusal: refusal.at or 0.0)  # several proxies' logs
    return found[-limit:] if limit > 0 else []


def _timestamp(prefix: str) -> float | None:
    """The time of the RFC 3339 timestamp first on a line, if any."""
    found = _RFC3339.match(prefix.strip())
    if found is None:
        return None
    fraction = (found["fraction"] or "0")[:6]  # Python takes microseconds at most
    zone = "+00:00" if found["zone"] in (None, "Z") else found["zone"]
    try:
        return datetime.fromisoformat(f"{found['time']}.{fraction}{zone}").timestamp()
    except ValueError:
        return None


_RFC3339 = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d\d:\d\d)?"
)


def parse_counts(text: str) -> dict[str, int]:
    """``beephost_egress_total`` by decision, from Prometheus text."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("beephost_egress_total{"):
            continue
        labels, _, value = line.partition("} ")
        decision = labels.partition('decision="')[2].partition('"')[0]
        try:
            counts[decision] = counts.get(decision, 0) + int(float(value.split()[0]))
        except (ValueError, IndexError):
            continue
    return counts
