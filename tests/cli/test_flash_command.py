"""`edge-agent flash` onto real boards: accounts behind Debian's OpenSSH server on 127.0.0.1, without systemd, so
the install script starts each agent with setsid + nohup and a pid file (its documented fallback)."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ssh_boards import SshBoards, ssh_boards, why_not
from test_simulate_data import five_class_npz

from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.cli.main import cli
from edge_agent.deploy.certs import throwaway_cluster

REPO = Path(__file__).resolve().parents[2]
BOARDS = 3  # the smoke setting draws 2 neighbours per round: it needs three agents
BOARD_PYTHON = Path("/usr/bin/python3")
NOT_IN_WHEEL = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                      "runs", "tests", "bench")


def _skip_reason() -> str | None:
    reason = why_not()
    if reason is not None:
        return reason
    if not BOARD_PYTHON.is_file():
        return f"the boards' Python, {BOARD_PYTHON}, is missing"
    probe = subprocess.run([str(BOARD_PYTHON), "-c", "import sys, venv; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)
    if probe.stdout.strip() != str(sys.version_info[:2]):
        return f"{BOARD_PYTHON} is not Python {sys.version_info[0]}.{sys.version_info[1]} with venv"
    return None


SKIP_REASON = _skip_reason()


@pytest.fixture(scope="module")
def boards() -> Iterator[SshBoards]:
    with ssh_boards(BOARDS) as made:
        yield made


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project wheel and every wheel it needs, pinned by constraints.txt (pip's index or cache, once), so the
    boards install with --no-index."""
    root = tmp_path_factory.mktemp("wheelhouse")
    shutil.copytree(REPO, root / "src", ignore=NOT_IN_WHEEL)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "wheels"), str(root / "src")], check=True, timeout=300, env=env)
    wheel, = (root / "wheels").glob("edge_agent-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "-d", str(root / "wheels"), str(wheel)],
                   check=True, timeout=600, env={**env, "PIP_CONSTRAINT": str(REPO / "constraints.txt")})
    return root / "wheels"


def _inventory(folder: Path, boards: SshBoards, entries: list[str], run_name: str, ports: list[int],
               extra_run: str = "") -> Path:
    """A fleet on the operator's own data: sensors.npz beside the inventory, which flash copies to every board."""
    if not (folder / "sensors.npz").is_file():
        five_class_npz(folder / "sensors.npz", n=1200)
    peers = ",".join(f"127.0.0.1:{port}" for port in ports)
    text = (f'certs = "certs"\nknown_hosts = "{boards.known_hosts}"\nidentity = "{boards.operator_key}"\n'
            f'python = "{BOARD_PYTHON}"\n\n[run]\nrun = "{run_name}"\nsetting = "smoke"\nbackend = "numpy"\n'
            f'solver = "euler"\nrounds = 0\nno-mdns = true\npeers = "{peers}"\nwait-peers = 60\n'
            f'data = "sensors.npz"\n{extra_run}\n' + "\n".join(entries))
    path = folder / f"fleet-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(text)
    return path


def _board(name: str, user: str, port: int, shard: int, listen: int, profile: str = "generic",
           identity: Path | None = None) -> str:
    key = f'identity = "{identity}"\n' if identity else ""
    return (f'[[board]]\nname = "{name}"\nssh = "{user}@127.0.0.1:{port}"\nprofile = "{profile}"\n'
            f'shard = "{shard}/{BOARDS}"\nlisten = "127.0.0.1:{listen}"\n{key}')


def _flash(*args: str) -> tuple[Result, dict[str, tuple[str, str]]]:
    """The command's result and, per board, (RESULT, DETAIL) from its table."""
    result = CliRunner().invoke(cli, list(args))
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        board, _target, outcome = line.split()[:3]
        rows[board] = (outcome, line)
    return result, rows


def _root(home: Path) -> Path:
    return home / ".local" / "share" / "edge-agent"


def _pid(home: Path) -> int:
    return int((_root(home) / "agent.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _trained_rounds(home: Path) -> list[int]:
    metrics = _root(home) / "state" / "metrics.jsonl"
    if not metrics.is_file():
        return []
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [r["round"] for r in records if r.get("record") == "agent-round" and r.get("status") == "trained"]


def _wait_for_rounds(homes: tuple[Path, ...], rounds: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(len(_trained_rounds(home)) >= rounds for home in homes):
            return
        time.sleep(1)
    logs = {home.name: (_root(home) / "state" / "agent.log").read_text()[-800:] for home in homes}
    raise AssertionError(f"the agents did not train {rounds} rounds in {timeout_s} s: {logs}")


@pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON))
def test_flash_installs_three_boards_that_train_then_changes_nothing_reports_failures_rolls_back_and_unflashes(
        boards: SshBoards, wheelhouse: Path, tmp_path: Path) -> None:
    throwaway_cluster(tmp_path / "certs", [f"client-{i}" for i in range(BOARDS)])
    ports = free_loopback_ports(BOARDS)
    run_name = f"flash-{uuid.uuid4().hex[:8]}"
    entries = [_board(f"b{i}", boards.users[i], boards.port, i, ports[i]) for i in range(BOARDS)]
    fleet = _inventory(tmp_path, boards, entries, run_name, ports)
    wheel, = wheelhouse.glob("edge_agent-*.whl")
    source = ["--wheel", str(wheel), "--wheelhouse", str(wheelhouse)]

    first, rows = _flash("flash", str(fleet), *source)
    assert first.exit_code == 0, first.output
    assert {board: row[0] for board, row in rows.items()} == {f"b{i}": "installed" for i in range(BOARDS)}
    assert "b0: copying" in first.stderr  # progress, per board
    _wait_for_rounds(boards.homes, 2)  # they found each other (static peers) and trained together
    ours = (tmp_path / "sensors.npz").read_bytes()
    for home in boards.homes:  # on the data flash copied, at each board's own path
        assert (_root(home) / "current" / "files" / "sensors.npz").read_bytes() == ours
    pids = [_pid(home) for home in boards.homes]
    release = {home: os.readlink(_root(home) / "current") for home in boards.homes}

    again, rows = _flash("flash", str(fleet), *source)
    assert again.exit_code == 0, again.output
    assert {board: row[0] for board, row in rows.items()} == {f"b{i}": "unchanged" for i in range(BOARDS)}
    assert "copying" not in again.stderr
    assert [_pid(home) for home in boards.homes] == pids and all(map(_alive, pids))  # nothing restarted

    mixed = _inventory(tmp_path, boards, [
        entries[0],
        _board("refused", boards.users[1], boards.port, 1, ports[1], identity=boards.stranger_key),
        _board("toaster", boards.users[2], boards.port, 2, ports[2], profile="no-such-board"),
    ], run_name, ports)
    failed, rows = _flash("flash", str(mixed), *source)
    assert failed.exit_code == 1, failed.output
    assert len(failed.stdout.splitlines()) == 4  # a header and one line per board
    assert rows["b0"][0] == "unchanged"
    assert rows["refused"][0] == "failed" and "Permission denied (publickey" in rows["refused"][1]
    assert rows["toaster"][0] == "failed" and "unknown profile 'no-such-board'" in rows["toaster"][1]
    assert _pid(boards.homes[0]) == pids[0]

    changed = _inventory(tmp_path, boards, entries, run_name, ports, extra_run="stall-window = 25.0")
    looked, rows = _flash("flash", str(changed), "--dry-run", *source)
    assert looked.exit_code == 0, looked.output
    assert {board: row[0] for board, row in rows.items()} == {f"b{i}": "would-upgrade" for i in range(BOARDS)}
    assert [_pid(home) for home in boards.homes] == pids  # a dry run changes nothing
    upgraded, rows = _flash("flash", str(changed), "--only", "b0", *source)
    assert upgraded.exit_code == 0, upgraded.output
    assert list(rows) == ["b0"] and rows["b0"][0] == "upgraded"
    assert "venv already there" in upgraded.stderr  # a settings change reuses the venv: no wheels copied
    root = _root(boards.homes[0])
    assert os.readlink(root / "previous") == release[boards.homes[0]]
    assert os.readlink(root / "current") != release[boards.homes[0]]
    assert 'stall-window = 25.0' in (root / "current" / "agent.toml").read_text()
    assert _pid(boards.homes[0]) != pids[0] and not _alive(pids[0]) and _alive(_pid(boards.homes[0]))

    back, rows = _flash("flash", str(changed), "--rollback", "b0")
    assert back.exit_code == 0, back.output
    assert rows["b0"][0] == "rolled-back"
    assert os.readlink(root / "current") == release[boards.homes[0]]
    assert "stall-window" not in (root / "current" / "agent.toml").read_text()
    assert _alive(_pid(boards.homes[0]))

    records, running = (root / "state" / "metrics.jsonl").read_bytes(), _pid(boards.homes[0])
    kept, rows = _flash("unflash", str(fleet), "--only", "b0", "--keep-state")
    assert kept.exit_code == 0 and rows["b0"][0] == "removed", kept.output
    assert f"state kept in {(root / 'state').resolve()}" in rows["b0"][1]
    assert [path.name for path in root.iterdir()] == ["state"] and not _alive(running)
    assert (root / "state" / "metrics.jsonl").read_bytes()[:len(records)] == records  # nothing it wrote is lost
    kept_rounds = _trained_rounds(boards.homes[0])
    back, rows = _flash("flash", str(fleet), "--only", "b0", *source)
    assert back.exit_code == 0 and rows["b0"][0] == "installed", back.output
    _wait_for_rounds(boards.homes[:1], len(kept_rounds) + 1)
    resumed = _trained_rounds(boards.homes[0])  # from the kept checkpoint: no round trained twice
    assert resumed[:len(kept_rounds)] == kept_rounds and resumed == sorted(set(resumed))
    assert f"at round {kept_rounds[-1] + 1} from its checkpoint" in (root / "state" / "agent.log").read_text()

    removed, rows = _flash("unflash", str(fleet))
    assert removed.exit_code == 0, removed.output
    assert {board: row[0] for board, row in rows.items()} == {f"b{i}": "removed" for i in range(BOARDS)}
    assert not any(_root(home).exists() for home in boards.homes)
    assert not any(map(_alive, pids[1:]))


def _listing(home: Path) -> list[str]:
    return sorted(str(path.relative_to(home)) for path in home.rglob("*"))


@pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON))
def test_flash_checks_each_board_first_and_a_problem_is_one_line_with_nothing_copied(
        boards: SshBoards, wheelhouse: Path, tmp_path: Path) -> None:
    throwaway_cluster(tmp_path / "certs", [f"client-{i}" for i in range(BOARDS)])
    ports = free_loopback_ports(BOARDS)
    entries = [_board(f"b{i}", boards.users[i], boards.port, i, ports[i]) for i in range(BOARDS)]
    entries[1] += 'advertise = "eth9"\n'  # no such interface on the board
    entries[2] += 'advertise = "lo"\n'  # there, with an IPv4 address
    fleet = _inventory(tmp_path, boards, entries, f"check-{uuid.uuid4().hex[:8]}", ports)
    wheel, = wheelhouse.glob("edge_agent-*.whl")
    before = [_listing(home) for home in boards.homes]
    source = ["--wheel", str(wheel), "--wheelhouse", str(wheelhouse)]
    looked, rows = _flash("flash", str(fleet), "--dry-run", *source)
    assert looked.exit_code == 1, looked.output
    assert rows["b0"][0] == rows["b2"][0] == "would-install"
    failed = [line for line in looked.stdout.splitlines() if " failed " in line]
    assert len(failed) == 1 and failed[0].startswith("b1 ")
    assert 'advertise = "eth9": the board has no interface eth9 (interfaces: ' in failed[0] and "lo" in failed[0]
    flashed, rows = _flash("flash", str(fleet), "--only", "b1", *source)  # a real flash checks first too
    assert flashed.exit_code == 1 and list(rows) == ["b1"] and rows["b1"][0] == "failed", flashed.output
    assert "copying" not in flashed.stderr
    assert [_listing(home) for home in boards.homes] == before  # nothing copied anywhere

    become = _inventory(tmp_path, boards, entries[:1], "check-become", ports).read_text()
    root = tmp_path / "become.toml"
    root.write_text("become = true\n" + become)
    looked, rows = _flash("flash", str(root), "--dry-run", "--wheel", str(wheel))
    assert looked.exit_code == 1 and rows["b0"][0] == "failed", looked.output
    assert "sudo: become = true, but " in rows["b0"][1]  # no sudo here, or none without a password for this user
    assert len(looked.stdout.splitlines()) == 2


def test_flash_out_writes_one_bundle_per_board_and_a_table_without_touching_any_board(tmp_path: Path) -> None:
    throwaway_cluster(tmp_path / "certs", ["client-0", "client-1"])
    wheel = tmp_path / "edge_agent-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("edge_agent/__init__.py", "")
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('certs = "certs"\n[run]\nbackend = "numpy"\n' + "".join(
        _board(f"b{i}", "pi", 22, i, 50051) .replace("127.0.0.1:22", f"10.0.0.{i + 1}") for i in range(2))
        + _board("b2", "pi", 22, 2, 50051, profile="toaster").replace("127.0.0.1:22", "10.0.0.3"))
    result, rows = _flash("flash", str(fleet), "--out", str(tmp_path / "bundles"), "--wheel", str(wheel))
    assert result.exit_code == 1, result.output
    assert [rows[f"b{i}"][0] for i in range(3)] == ["written", "written", "failed"]
    assert "unknown profile 'toaster'" in rows["b2"][1]
    assert sorted(path.name for path in (tmp_path / "bundles" / "b1" / "certs").iterdir()) == [
        "ca.crt", "client-1.crt", "client-1.key", "revoked.crl"]
    assert not (tmp_path / "bundles" / "b2").exists()


def test_flash_mistakes_in_how_it_is_called_are_one_line_and_exit_status_2(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text("insecure = true\n" + _board("b0", "pi", 22, 0, 50051) + _board("b1", "pi", 23, 1, 50051))
    for args, message in ((["--rollback", "b0,b1"], "--rollback takes one board"),
                          (["--only", "b9"], "no board named 'b9'")):
        result = CliRunner().invoke(cli, ["flash", str(fleet), *args])
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.splitlines()) == 1
    result = CliRunner().invoke(cli, ["unflash", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2 and "cannot read the inventory" in result.stderr


def test_a_bundle_carries_the_operators_model_file_and_data_and_its_agent_trains_on_them(tmp_path: Path) -> None:
    """What a board runs, run here: the bundle's agent.toml, from another folder, on the copies flash made."""
    pytest.importorskip("torch")
    (tmp_path / "models").mkdir()
    shutil.copyfile(REPO / "examples" / "sensor_model.py", tmp_path / "models" / "sensor_model.py")
    five_class_npz(tmp_path / "sensors.npz")
    wheel = tmp_path / "edge_agent-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("edge_agent/__init__.py", "")
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('insecure = true\n[run]\nbackend = "torch"\nmodel = "models/sensor_model.py:sensor_net"\n'
                     'data = "sensors.npz"\nsetting = "smoke"\nsolver = "euler"\nno-mdns = true\n'
                     'peers = "127.0.0.1:9"\nwait-peers = 0\nrounds = 1\nquiet = true\n'
                     + _board("b0", "pi", 22, 0, free_loopback_ports(1)[0]).replace("127.0.0.1:22", "10.0.0.1"))
    result, rows = _flash("flash", str(fleet), "--out", str(tmp_path / "bundles"), "--wheel", str(wheel))
    assert result.exit_code == 0 and rows["b0"][0] == "written", result.output
    (tmp_path / "models" / "sensor_model.py").unlink()  # the board has only what the bundle carries
    (tmp_path / "sensors.npz").unlink()
    (tmp_path / "elsewhere").mkdir()
    done = subprocess.run([sys.executable, "-m", "edge_agent", "run", "--config",
                           str(tmp_path / "bundles" / "b0" / "agent.toml")], capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL, cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records if r.get("record") == "agent-round"] == ["trained"]
