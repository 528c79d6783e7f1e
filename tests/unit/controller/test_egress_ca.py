"""The egress proxy's CA: made once, written as mitmproxy's confdir, trusted by the
sandbox's bundle beside the public CAs."""

import stat
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
)

from beephost_controller import egress_ca


def test_the_confdir_holds_what_mitmproxy_reads(tmp_path: Path) -> None:
    confdir = tmp_path / "ca"
    cert_pem = egress_ca.ensure_ca(confdir, "test", owner=None)
    raw = (confdir / "mitmproxy-ca.pem").read_bytes()
    key = load_pem_private_key(raw, None)
    cert = x509.load_pem_x509_certificates(raw)[0]
    assert cert.public_bytes(Encoding.PEM) == cert_pem
    assert key.public_key() == cert.public_key()
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca
    # Written here: mitmproxy would write them into its (read-only) confdir.
    dhparam = (confdir / "mitmproxy-dhparam.pem").read_bytes()
    assert dhparam.startswith(b"-----BEGIN DH PARAMETERS-----\n")
    assert stat.S_IMODE((confdir / "mitmproxy-ca.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(confdir.stat().st_mode) == 0o700


def test_the_ca_is_made_once(tmp_path: Path) -> None:
    first = egress_ca.ensure_ca(tmp_path, "test", owner=None)
    assert egress_ca.ensure_ca(tmp_path, "test", owner=None) == first


def test_a_partial_confdir_is_made_again(tmp_path: Path) -> None:
    first = egress_ca.ensure_ca(tmp_path, "test", owner=None)
    (tmp_path / "mitmproxy-dhparam.pem").unlink()
    assert egress_ca.ensure_ca(tmp_path, "test", owner=None) != first


def test_the_sandbox_bundle_is_the_public_cas_and_the_proxy_ca(
    tmp_path: Path,
) -> None:
    ca = egress_ca.ensure_ca(tmp_path / "ca", "test", owner=None)
    extra = tmp_path / "extra.pem"
    _, extra_ca = egress_ca.make_ca("operator")
    extra.write_bytes(extra_ca)
    bundle_path = tmp_path / "trust" / "ca-bundle.pem"
    egress_ca.write_bundle(bundle_path, ca, extra)
    bundle = bundle_path.read_bytes()
    begin = b"-----BEGIN CERTIFICATE-----"
    public = Path(certifi.where()).read_bytes()
    assert bundle.count(begin) == public.count(begin) + 2
    assert bundle.endswith(ca)
    assert extra_ca in bundle
    assert b"PRIVATE KEY" not in bundle
    assert stat.S_IMODE(bundle_path.stat().st_mode) == 0o644
