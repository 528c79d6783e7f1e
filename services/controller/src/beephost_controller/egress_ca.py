"""The egress proxy's interception CA: made once by the controller, kept with the
proxy's state, trusted by the sandboxes behind it.

The proxy intercepts TLS only for destinations a secret is attached to (it must put
a header on the request); every other destination stays end-to-end TLS, checked by
the sandbox against the public CAs. The sandbox's bundle holds both: the public CAs
(certifi's, plus the controller's own CA_BUNDLE if set) and this CA's certificate.
Its key never leaves the proxy's state directory (mode 0700, the proxy's own).
"""

import datetime
import os
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: mitmproxy's confdir names (--set confdir=DIR; basename mitmproxy).
CA_FILE = "mitmproxy-ca.pem"  # key and certificate
CA_CERT_FILE = "mitmproxy-ca-cert.pem"
DHPARAM_FILE = "mitmproxy-dhparam.pem"
#: How long the CA is valid: the controller makes a new one when it nears its end.
CA_DAYS = 3650
RENEW_BEFORE = datetime.timedelta(days=30)

# mitmproxy writes these DH parameters into its confdir when they are missing; ours
# is mounted read-only, so they are written here (the same public parameters,
# mitmproxy/certs.py's DEFAULT_DHPARAM, MIT licence).
_DHPARAM = b"""-----BEGIN DH PARAMETERS-----
MIICCAKCAgEAyT6LzpwVFS3gryIo29J5icvgxCnCebcdSe/NHMkD8dKJf8suFCg3
O2+dguLakSVif/t6dhImxInJk230HmfC8q93hdcg/j8rLGJYDKu3ik6H//BAHKIv
j5O9yjU3rXCfmVJQic2Nne39sg3CreAepEts2TvYHhVv3TEAzEqCtOuTjgDv0ntJ
Gwpj+BJBRQGG9NvprX1YGJ7WOFBP/hWU7d6tgvE6Xa7T/u9QIKpYHMIkcN/l3ZFB
chZEqVlyrcngtSXCROTPcDOQ6Q8QzhaBJS+Z6rcsd7X+haiQqvoFcmaJ08Ks6LQC
ZIL2EtYJw8V8z7C0igVEBIADZBI6OTbuuhDwRw//zU1uq52Oc48CIZlGxTYG/Evq
o9EWAXUYVzWkDSTeBH1r4z/qLPE2cnhtMxbFxuvK53jGB0emy2y1Ei6IhKshJ5qX
IB/aE7SSHyQ3MDHHkCmQJCsOd4Mo26YX61NZ+n501XjqpCBQ2+DfZCBh8Va2wDyv
A2Ryg9SUz8j0AXViRNMJgJrr446yro/FuJZwnQcO3WQnXeqSBnURqKjmqkeFP+d8
6mk2tqJaY507lRNqtGlLnj7f5RNoBFJDCLBNurVgfvq9TCVWKDIFD4vZRjCrnl6I
rD693XKIHUCWOjMh1if6omGXKHH40QuME2gNa50+YPn1iYDl88uDbbMCAQI=
-----END DH PARAMETERS-----
"""


def make_ca(name: str) -> tuple[bytes, bytes]:
    """A new CA for controller name: (its key as PEM, its certificate as PEM).
    P-256: mitmproxy signs each destination's certificate with it at first use."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Beep Python Host"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"beephost egress CA ({name})"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_confdir(
    confdir: Path, key_pem: bytes, cert_pem: bytes, owner: tuple[int, int] | None
) -> None:
    """Write mitmproxy's confdir files (the key readable by owner only)."""
    confdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(confdir, 0o700)
    if owner is not None:
        os.chown(confdir, *owner)
    files = confdir_files(key_pem, cert_pem)
    _write(confdir / CA_FILE, files[CA_FILE], 0o600, owner)
    _write(confdir / CA_CERT_FILE, files[CA_CERT_FILE], 0o644, owner)
    _write(confdir / DHPARAM_FILE, files[DHPARAM_FILE], 0o644, owner)


def confdir_files(key_pem: bytes, cert_pem: bytes) -> dict[str, bytes]:
    """mitmproxy's confdir, by file name (on Kubernetes, a Secret's keys)."""
    return {
        CA_FILE: key_pem + cert_pem,
        CA_CERT_FILE: cert_pem,
        DHPARAM_FILE: _DHPARAM.lstrip(),
    }


def current_ca(confdir: Path) -> bytes | None:
    """The CA certificate (PEM) in confdir if it is whole and not near its end."""
    try:
        pem = (confdir / CA_CERT_FILE).read_bytes()
        if not (confdir / CA_FILE).is_file() or not (confdir / DHPARAM_FILE).is_file():
            return None
    except OSError:
        return None
    return pem if usable(pem) else None


def usable(cert_pem: bytes) -> bool:
    """Whether a CA certificate (PEM) parses and is not near its end."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > RENEW_BEFORE


def ensure_ca(confdir: Path, name: str, owner: tuple[int, int] | None) -> bytes:
    """The CA certificate in confdir, made (once) if there is none usable."""
    pem = current_ca(confdir)
    if pem is None:
        key_pem, pem = make_ca(name)
        write_confdir(confdir, key_pem, pem, owner)
    return pem


def public_cas(extra: Path | None = None) -> bytes:
    """The public CAs a sandbox trusts: certifi's bundle, and extra (the
    controller's CA_BUNDLE) if set."""
    bundle = Path(certifi.where()).read_bytes()
    if extra is not None:
        bundle = bundle.rstrip(b"\n") + b"\n" + extra.read_bytes()
    return bundle


def sandbox_bundle(ca_pem: bytes, extra: Path | None = None) -> bytes:
    """The bundle a sandbox behind the proxy verifies TLS with: public CAs, then
    the proxy's CA (for the destinations it intercepts)."""
    return public_cas(extra).rstrip(b"\n") + b"\n" + ca_pem


def write_bundle(path: Path, ca_pem: bytes, extra: Path | None = None) -> None:
    """Write the sandbox bundle, readable by every sandbox user (0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o755)
    _write(path, sandbox_bundle(ca_pem, extra), 0o644, None)
