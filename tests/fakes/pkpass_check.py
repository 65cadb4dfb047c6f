"""Check a .pkpass the way Wallet does: the signature over manifest.json and every file's hash.

Reusable by any test that fetches a pass (PassKit web service, end-to-end).
Uses the real `openssl cms -verify`, so a signature our own code cannot
produce correctly fails here even if our reading of the format is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any


class PkpassInvalid(AssertionError):
    """The pass would be rejected by Wallet."""


def unzip_pkpass(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def openssl_verify(signature: bytes, manifest: bytes, root_path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sig_path, manifest_path = Path(tmp, "signature"), Path(tmp, "manifest.json")
        sig_path.write_bytes(signature)
        manifest_path.write_bytes(manifest)
        proc = subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig_path),
             "-content", str(manifest_path), "-CAfile", str(root_path), "-purpose", "any",
             "-out", "/dev/null"],
            capture_output=True, text=True, timeout=20,
        )
    if proc.returncode != 0:
        raise PkpassInvalid(f"openssl cms -verify failed: {proc.stderr.strip()}")


def signer_chain_subjects(signature: bytes) -> list[str]:
    """Subjects of the certificates embedded in the CMS signature (leaf and intermediates)."""
    proc = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-noout"],
                          input=signature, capture_output=True, timeout=20, check=True)
    return [line.split("=", 1)[1].strip() for line in proc.stdout.decode().splitlines()
            if line.startswith("subject=")]


def verify_pkpass(data: bytes, root_path: Path) -> dict[str, Any]:
    """Verify signature and manifest; return the parsed pass.json."""
    files = unzip_pkpass(data)
    for required in ("pass.json", "manifest.json", "signature", "icon.png"):
        if required not in files:
            raise PkpassInvalid(f"{required} missing from the pass")
    openssl_verify(files["signature"], files["manifest.json"], root_path)
    manifest = json.loads(files["manifest.json"])
    listed = set(manifest)
    present = set(files) - {"manifest.json", "signature"}
    if listed != present:
        raise PkpassInvalid(f"manifest lists {sorted(listed)} but the pass holds {sorted(present)}")
    for name, digest in manifest.items():
        if hashlib.sha1(files[name]).hexdigest() != digest:
            raise PkpassInvalid(f"SHA-1 of {name} does not match the manifest")
    return json.loads(files["pass.json"])
