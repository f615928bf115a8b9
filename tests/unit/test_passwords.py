"""Admin password hashes made in Python must be what WordPress itself makes and accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from wpclone_engine.passwords import wordpress_hash

PHPASS = "/usr/share/wordpress/wp-includes/class-phpass.php"


def _php(code: str, *args: str) -> str:
    assert shutil.which("php") is not None, "php is not installed: run testenv/install-system-packages.sh"
    return subprocess.run(["php", "-r", f"require '{PHPASS}'; {code}", "--", *args],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("password", ["Adm1n-Pass!", "pässwörd ✓", "", "x" * 200])
def test_the_hash_is_the_one_wordpress_makes_with_the_same_salt(password: str) -> None:
    ours = wordpress_hash(password, salt=b"abcdEFGH")
    theirs = _php("echo (new PasswordHash(8, true))->crypt_private($argv[1], '$P$BabcdEFGH');", password)
    assert ours == theirs


def test_wordpress_accepts_a_hash_with_a_random_salt() -> None:
    hashed = wordpress_hash("S3cret pass")
    assert hashed.startswith("$P$B") and len(hashed) == 34
    check = "echo (new PasswordHash(8, true))->CheckPassword($argv[1], $argv[2]) ? 'yes' : 'no';"
    assert _php(check, "S3cret pass", hashed) == "yes"
    assert _php(check, "wrong", hashed) == "no"


def test_two_hashes_of_one_password_differ() -> None:
    assert wordpress_hash("same") != wordpress_hash("same")


def test_a_salt_outside_the_alphabet_is_refused() -> None:
    with pytest.raises(ValueError):
        wordpress_hash("x", salt=b"short")
