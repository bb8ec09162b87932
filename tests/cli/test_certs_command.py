"""`edge-agent certs` as an operator runs it: files with private keys 0600, no key material printed, one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def _certs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", "certs", *args], capture_output=True, text=True,
                          timeout=60, env=os.environ)


def test_init_issue_revoke_list_round_trip_without_printing_keys(tmp_path: Path) -> None:
    folder = str(tmp_path)
    outputs = [_certs("init", "--dir", folder), _certs("issue", "client-0", "--dir", folder),
               _certs("issue", "client-1", "--dir", folder), _certs("revoke", "client-1", "--dir", folder),
               _certs("list", "--dir", folder)]
    assert [o.returncode for o in outputs] == [0] * 5, [o.stderr for o in outputs]
    printed = "".join(o.stdout + o.stderr for o in outputs)
    assert "PRIVATE KEY" not in printed and "BEGIN" not in printed
    for key in ("ca.key", "client-0.key", "client-1.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
        assert (tmp_path / key).read_text().strip() not in printed
    rows = [line.split() for line in outputs[-1].stdout.splitlines()]
    assert rows[0] == ["name", "serial", "expires", "revoked"]
    assert [(r[0], r[3]) for r in rows[1:]] == [("client-0", "no"), ("client-1", "yes")]


def test_init_makes_a_missing_folder_readable_by_its_owner_alone(tmp_path: Path) -> None:
    folder = tmp_path / "fleet" / "certs"
    made = _certs("init", "--dir", str(folder))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and (folder / "ca.key").is_file()
    (tmp_path / "a-file").write_text("")
    refused = _certs("init", "--dir", str(tmp_path / "a-file" / "certs"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "cannot make the folder" in refused.stderr


def test_mistakes_give_one_error_line_and_exit_status_2(tmp_path: Path) -> None:
    missing = _certs("issue", "a", "--dir", str(tmp_path / "missing"))
    assert _certs("init", "--dir", str(tmp_path)).returncode == 0
    bad_name = _certs("issue", "no/slash", "--dir", str(tmp_path))
    assert _certs("issue", "a", "--dir", str(tmp_path)).returncode == 0
    twice = _certs("issue", "a", "--dir", str(tmp_path))
    for result, words in ((missing, "is not a folder"), (bad_name, "is not an agent id"), (twice, "already has")):
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and words in result.stderr and "Traceback" not in result.stderr
