"""Throwaway TLS material made with openssl: a CA, and certificates it signs for a
server (with an IP subjectAltName) or for a client (extendedKeyUsage clientAuth)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def make_ca(d: Path, name: str = "skiff-test-ca") -> tuple[Path, Path]:
    """(ca.crt, ca.key) in ``d``."""
    _openssl(
        d,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return d / "ca.crt", d / "ca.key"


def make_cert(
    d: Path, name: str, *, ip: str | None = None, client: bool = False
) -> tuple[Path, Path]:
    """(<name>.crt, <name>.key) signed by the CA in ``d``."""
    _openssl(
        d,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={ip or name}",
    )
    ext = []
    if ip:
        ext.append(f"subjectAltName=IP:{ip}")
    ext.append("extendedKeyUsage=" + ("clientAuth" if client else "serverAuth"))
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        d,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
    )
    return d / f"{name}.crt", d / f"{name}.key"
