"""`kopilka staff create`: the password from stdin (never an argument), the TOTP URI printed once, and the account
signs in to the back office with them."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import pyotp

from tests.cli.conftest import ROOT, kopilka_argv
from tests.office.helpers import Office, StaffLogin


def staff_create(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*kopilka_argv(), "staff", "create", *args], cwd=ROOT, env=dict(os.environ),
                          input=password + "\n", capture_output=True, text=True, timeout=120)


async def test_a_staff_member_made_by_the_command_signs_in_with_password_and_totp(server: str) -> None:
    email = f"desk-{secrets.token_hex(4)}@example.org"
    password = "a long enough password"
    made = staff_create("--email", email.upper(), "--role", "support", "--role", "auditor", password=password)
    assert made.returncode == 0, made.stderr
    uri = re.search(r"^otpauth://totp/\S+$", made.stdout, re.MULTILINE)
    assert uri and password not in made.stdout + made.stderr
    secret = pyotp.parse_uri(uri.group(0)).secret
    async with Office(server) as office:
        await office.signed_in(StaffLogin(email=email, roles=["support", "auditor"], secret=secret, password=password))
        assert (await office.get("/office/audit")).status_code == 200
    again = staff_create("--email", email, "--role", "support", password=password)
    assert again.returncode != 0 and "exists already" in again.stderr
    for bad in (("--role", "boss"), ("--role", "support")):
        refused = staff_create("--email", f"x-{secrets.token_hex(3)}@example.org", *bad,
                               password="short" if bad[1] == "support" else password)
        assert refused.returncode != 0 and ("roles" in refused.stderr or "12 characters" in refused.stderr)
