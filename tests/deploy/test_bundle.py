"""A board's bundle carries its own key and the CA's certificate only, and its digest changes with content alone."""

import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_agent.deploy.bundle import BundleError, board_wheels, build_bundle, file_digest
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.deploy.inventory import Inventory, load_inventory
from edge_agent.deploy.profiles import find_profile
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.source import files_digest, model_files
from edge_agent.runtime.onnx_backend import cache_subpath

INVENTORY = """
certs = "certs"
python = "/usr/bin/python3"

[run]
run = "lab"
setting = "smoke"
backend = "numpy"
rounds = 0

[[board]]
name = "alpha"
ssh = "pi@10.0.0.1"
profile = "generic"
shard = "0/3"
listen = "0.0.0.0:50051"
advertise = "10.0.0.1"

[[board]]
name = "beta"
ssh = "pi@10.0.0.2"
profile = "generic"
shard = "1/3"
listen = "0.0.0.0:50051"
"""


def _wheel(path: Path, stamp: tuple[int, int, int, int, int, int] = (2024, 1, 1, 0, 0, 0)) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in (("edge_agent/__init__.py", "x = 1\n"), ("edge_agent-0.1.0.dist-info/METADATA", "m\n")):
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), text)
    return path


@pytest.fixture
def fleet(tmp_path: Path) -> Inventory:
    throwaway_cluster(tmp_path / "certs", ["client-0", "client-1", "client-2"])
    (tmp_path / "fleet.toml").write_text(INVENTORY)
    return load_inventory(tmp_path / "fleet.toml")


def test_a_bundle_holds_its_own_key_and_the_ca_certificate_but_no_other_key_and_not_the_ca_key(
        fleet: Inventory, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    bundle = build_bundle(fleet, fleet.boards[0], tmp_path / "out" / "alpha", wheel)
    files = sorted(path.relative_to(bundle.folder).as_posix() for path in bundle.folder.rglob("*") if path.is_file())
    assert files == ["BUNDLE", "agent.toml", "certs/ca.crt", "certs/client-0.crt", "certs/client-0.key",
                     "certs/revoked.crl", "edge-agent.service", "install.sh", "profiles/generic.toml",
                     "wheels/edge_agent-0.1.0-py3-none-any.whl"]
    assert (bundle.folder / "certs" / "client-0.key").stat().st_mode & 0o777 == 0o600
    assert (bundle.folder / "certs" / "client-0.key").read_bytes() == (tmp_path / "certs" / "client-0.key").read_bytes()
    assert bundle.backend == "numpy" and bundle.release in (bundle.folder / "BUNDLE").read_text()
    config = tomllib.loads((bundle.folder / "agent.toml").read_text())
    assert config == {"shard": "0/3", "id": "client-0", "profile": "generic", "listen": "0.0.0.0:50051",
                      "advertise": "10.0.0.1", "certs": "certs", "checkpoint-dir": "../../state/checkpoints",
                      "metrics": "../../state/metrics.jsonl", "run": "lab", "setting": "smoke", "backend": "numpy",
                      "rounds": 0}


def test_the_digest_ignores_when_a_wheel_was_built_and_changes_with_any_setting(fleet: Inventory,
                                                                                tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    wheel = _wheel(tmp_path / "1" / "edge_agent-0.1.0-py3-none-any.whl")
    first = build_bundle(fleet, fleet.boards[0], tmp_path / "a", wheel)
    rebuilt = _wheel(tmp_path / "2" / "edge_agent-0.1.0-py3-none-any.whl", stamp=(2025, 6, 1, 12, 0, 0))
    assert rebuilt.read_bytes() != (tmp_path / "1" / rebuilt.name).read_bytes()
    again = build_bundle(fleet, fleet.boards[0], tmp_path / "b", rebuilt)
    assert (again.release, again.venv) == (first.release, first.venv)
    (tmp_path / "renamed.toml").write_text(INVENTORY)  # the same boards and settings under another file name
    renamed = build_bundle(load_inventory(tmp_path / "renamed.toml"), fleet.boards[0], tmp_path / "e", rebuilt)
    assert renamed.release == first.release
    other_board = build_bundle(fleet, fleet.boards[1], tmp_path / "c", rebuilt)
    assert other_board.release != first.release and other_board.venv == first.venv
    changed = Inventory(**{**fleet.__dict__, "run": (*fleet.run, ("stall-window", 30.0))})
    settings_only = build_bundle(changed, fleet.boards[0], tmp_path / "d", rebuilt)
    assert settings_only.release != first.release and settings_only.venv == first.venv  # the venv is reused


def test_a_board_without_a_certificate_or_with_an_unknown_profile_gets_one_line(fleet: Inventory,
                                                                                tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    (tmp_path / "certs" / "client-1.key").unlink()
    with pytest.raises(BundleError, match=r"client-1.key is missing \(edge-agent certs issue client-1 --dir"):
        build_bundle(fleet, fleet.boards[1], tmp_path / "beta", wheel)
    unknown = Inventory(**{**fleet.__dict__, "boards": (fleet.boards[0].__class__(
        **{**fleet.boards[0].__dict__, "profile": "toaster"}),)})
    with pytest.raises(BundleError, match="unknown profile 'toaster'"):
        build_bundle(unknown, unknown.boards[0], tmp_path / "alpha", wheel)


def test_a_wheelhouse_gives_a_board_pure_wheels_and_those_of_its_architecture(tmp_path: Path) -> None:
    names = ["numpy-2.3.5-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
             "numpy-2.3.5-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
             "click-8.3.1-py3-none-any.whl", "edge_agent-0.0.9-py3-none-any.whl"]
    for name in names:
        _wheel(tmp_path / name)
    pi = [path.name for path in board_wheels(tmp_path, find_profile("rpi-4"))]
    assert pi == ["click-8.3.1-py3-none-any.whl", names[0]]
    assert [path.name for path in board_wheels(tmp_path, find_profile("generic"))] == [pi[0], names[1]]
    assert file_digest(tmp_path / names[2]) == file_digest(_wheel(tmp_path / "copy.whl", stamp=(2030, 1, 1, 0, 0, 0)))


def test_a_model_other_than_the_mlp_is_refused_at_flash_time_unless_the_boards_run_torch(
        fleet: Inventory, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    cnn = Inventory(**{**fleet.__dict__, "run": (*fleet.run, ("model", "cnn"))})  # and backend = "numpy"
    with pytest.raises(BundleError, match=r"board alpha: \[run\] model = 'cnn' runs on the torch backend only, not "
                                          r"numpy \(\[run\] backend\): set backend = \"torch\""):
        build_bundle(cnn, cnn.boards[0], tmp_path / "alpha", wheel)
    on_torch = Inventory(**{**cnn.__dict__, "run": tuple((key, "torch" if key == "backend" else value)
                                                         for key, value in cnn.run)})
    bundle = build_bundle(on_torch, on_torch.boards[0], tmp_path / "alpha", wheel)
    assert 'model = "cnn"' in (bundle.folder / "agent.toml").read_text() and bundle.backend == "torch"


def test_the_model_file_and_npz_data_that_run_names_travel_in_the_bundle_and_agent_toml_names_the_copies(
        fleet: Inventory, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.py").write_text("from torch import nn\nfrom layers.widths import OUT\n\n\n"
                                                 "def build(shape, classes):\n"
                                                 "    return nn.Linear(shape[0], classes)\n")  # flash never imports it
    (tmp_path / "models" / "layers").mkdir()
    (tmp_path / "models" / "layers" / "__init__.py").write_text("")
    (tmp_path / "models" / "layers" / "widths.py").write_text("OUT = 3\n")
    (tmp_path / "models" / "notes.py").write_text("not imported by mine.py\n")
    (tmp_path / "sensors.npz").write_bytes(b"not read by flash for a torch board")
    settings = {"backend": "torch", "model": "models/mine.py:build", "data": "sensors.npz"}
    mine = Inventory(**{**fleet.__dict__, "run": (*((k, v) for k, v in fleet.run if k != "backend"),
                                                  *settings.items())})
    bundle = build_bundle(mine, mine.boards[0], tmp_path / "alpha", wheel)
    config = tomllib.loads((bundle.folder / "agent.toml").read_text())
    assert config["model"] == "files/mine.py:build" and config["data"] == "files/sensors.npz"
    assert (bundle.folder / "files" / "mine.py").read_text() == (tmp_path / "models" / "mine.py").read_text()
    # the modules beside it that it imports travel with it, at the same places: the board's digest is ours
    assert (bundle.folder / "files" / "layers" / "widths.py").is_file()
    assert not (bundle.folder / "files" / "notes.py").exists()
    assert files_digest(model_files(bundle.folder / "files" / "mine.py")) == files_digest(
        model_files(tmp_path / "models" / "mine.py"))
    assert (bundle.folder / "files" / "sensors.npz").stat().st_mode & 0o777 == 0o644  # the service user reads it
    (tmp_path / "models" / "mine.py").write_text((tmp_path / "models" / "mine.py").read_text() + "# edited\n")
    edited = build_bundle(mine, mine.boards[0], tmp_path / "alpha", wheel)
    assert edited.release != bundle.release  # an edited model file is a new release
    (tmp_path / "models" / "layers" / "widths.py").write_text("OUT = 4\n")
    assert build_bundle(mine, mine.boards[0], tmp_path / "alpha", wheel).release != edited.release  # and a helper

    (tmp_path / "sensors.npz").unlink()
    with pytest.raises(BundleError, match=r"fleet.toml: \[run\] data names .*sensors.npz, which is not a file"):
        build_bundle(mine, mine.boards[0], tmp_path / "alpha", wheel)


def test_digits_installs_the_data_extra_beside_torch(fleet: Inventory, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    run = tuple((key, "torch" if key == "backend" else value) for key, value in fleet.run)
    digits = Inventory(**{**fleet.__dict__, "run": (*run, ("data", "digits"))})
    build_bundle(digits, digits.boards[0], tmp_path / "alpha", wheel)
    assert "EXTRA='[torch,data]'" in (tmp_path / "alpha" / "BUNDLE").read_text()


def test_the_board_kernels_are_sized_to_the_fleets_data_and_unreadable_data_is_one_line_where_they_are_needed(
        fleet: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path / "edge_agent-0.1.0-py3-none-any.whl")
    (tmp_path / "sensors.npz").write_bytes(b"not an npz")

    def with_backend(backend: str) -> Inventory:
        run = tuple((key, backend if key == "backend" else value) for key, value in fleet.run)
        return Inventory(**{**fleet.__dict__, "run": (*run, ("data", "sensors.npz"))})
    onnx = with_backend("onnxruntime")
    with pytest.raises(BundleError, match=r"fleet.toml: \[run\] data = 'sensors.npz': "):
        build_bundle(onnx, onnx.boards[0], tmp_path / "alpha", wheel)
    auto = with_backend("auto")  # may run torch or numpy on the board: no kernels, no error
    bundle = build_bundle(auto, auto.boards[0], tmp_path / "alpha", wheel)
    assert not (bundle.folder / "cache").exists() and (bundle.folder / "files" / "sensors.npz").is_file()

    pytest.importorskip("torch")  # the kernels are exported here, for the MLP sized to these samples
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "sensors.npz", x=rng.normal(size=(90, 6)).astype(np.float32), y=np.arange(90) % 3)
    small = Inventory(**{**onnx.__dict__, "run": (*onnx.run, ("proj-dim", 16))})
    bundle = build_bundle(small, small.boards[0], tmp_path / "alpha", wheel)
    assert (bundle.folder / "cache" / cache_subpath(MLPSpec((6, 100, 3)), 16) / "manifest.json").is_file()
