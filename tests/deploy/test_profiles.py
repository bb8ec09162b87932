"""Board profiles: every shipped TOML loads with sane values, and each kind of mistake is one line naming the field."""

from pathlib import Path

import pytest

from edge_agent.deploy.profiles import PROFILES_ENV, find_profile, list_profiles, load_profile, profile_dir

SHIPPED = {"generic", "rpi-zero-2w", "rpi-4", "rpi-5", "jetson-nano", "jetson-orin-nano"}
VALID = """\
[board]
name = "Test board"
description = "for tests"
architecture = "aarch64"
cores = 4
memory_mb = 2048
compute_scale = 9.0

[runtime]
backend = "onnxruntime"
execution_providers = ["CPUExecutionProvider"]
threads = 4
memory_budget_mb = 1000
jacobian_chunk = 128

[spark]
preset = "published"
projection = "tensorsketch"
proj_dim = 1024
precision = "fp16"
candidates_precision = "int8"
weights_precision = "fp32"
residual_share = 1
tail_rate = 0.0

[link]
uplink = "2mbit"
downlink = "10mbit"
latency = "20ms"
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_profile_dir_ships_one_profile_per_board() -> None:
    assert {path.stem for path in profile_dir().glob("*.toml")} == SHIPPED
    assert {profile.name for profile in list_profiles()} == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_profile_loads_with_consistent_values(name: str) -> None:
    profile = find_profile(name)
    assert profile.name == name and profile.path == profile_dir() / f"{name}.toml"
    assert profile.board.name and profile.board.cores >= 1
    assert 0 < profile.runtime.memory_budget_mb < profile.board.memory_mb
    assert 1 <= profile.runtime.threads <= profile.board.cores
    assert profile.runtime.jacobian_chunk >= 1 and profile.runtime.execution_providers
    assert profile.link.uplink_bps >= 0 and profile.link.downlink_bps >= 0 and profile.link.latency_s >= 0


def test_all_shipped_profiles_share_the_projection_so_mixed_boards_can_train_together() -> None:
    assert len({(p.spark.projection, p.spark.proj_dim) for p in list_profiles()}) == 1


def test_board_facts_match_the_hardware() -> None:
    zero, orin, nano = find_profile("rpi-zero-2w"), find_profile("jetson-orin-nano"), find_profile("jetson-nano")
    assert (zero.board.memory_mb, zero.board.cores) == (512, 4)
    assert (zero.spark.precision, zero.spark.weights_precision) == ("int4", "int8")  # a 4 Mbit/s WiFi uplink
    assert (zero.spark.residual_share, zero.spark.tail_rate) == (0.9, 0.25)  # and fewer Jacobian rows
    wired = [p for p in list_profiles() if p.name != "rpi-zero-2w"]
    assert all((p.spark.residual_share, p.spark.tail_rate) == (1.0, 0.0) for p in wired)  # every row
    assert zero.link.uplink_bps < 10e6 and zero.runtime.memory_budget_mb <= 300
    assert (orin.board.cores, orin.board.memory_mb) == (6, 8192)
    assert nano.runtime.execution_providers == (
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert find_profile("generic").link.uplink_bps == 0.0  # unshaped, like `run` without --uplink


def test_valid_file_loads_into_typed_fields(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, "test", VALID))
    assert profile.name == "test" and profile.board.memory_mb == 2048
    assert profile.runtime.execution_providers == ("CPUExecutionProvider",)
    assert (profile.spark.residual_share, profile.spark.tail_rate) == (1.0, 0.0)
    assert isinstance(profile.spark.residual_share, float)
    assert (profile.link.uplink_bps, profile.link.downlink_bps, profile.link.latency_s) == (2e6, 10e6, 0.02)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("threads = 4\n", "", "[runtime] threads: missing key"),
    ("cores = 4", "cores = -4", "[board] cores: must be a positive integer, got -4"),
    ("memory_budget_mb = 1000", "memory_budget_mb = 4096", "[runtime] memory_budget_mb: must be below"),
    ('"tensorsketch"', '"fastfood"', "[spark] projection: expected one of gaussian"),
    ('"tensorsketch"', '"identity"', "[spark] projection"),
    ('"2mbit"', '"fast"', "[link] uplink: bad rate 'fast'"),
    ('"20ms"', '"soon"', "[link] latency: bad duration"),
    ("cores = 4", "cores = 4\ngpu = true", "[board] gpu: unknown key"),
    ("cores = 4", 'cores = "4"', "[board] cores: expected an integer"),
    ("cores = 4", "cores = true", "[board] cores: expected an integer"),
    ("proj_dim = 1024", "proj_dim = 0", "[spark] proj_dim: must be a positive integer"),
    ('"fp16"', '"fp8"', "[spark] precision: expected one of fp32, fp16, int8, int4"),
    ('weights_precision = "fp32"', 'weights_precision = "int2"', "[spark] weights_precision: expected one of fp32"),
    ('candidates_precision = "int8"', 'candidates_precision = "int3"', "[spark] candidates_precision: expected one of"),
    ("residual_share = 1", "residual_share = 0", "[spark] residual_share: must lie in (0, 1], got 0.0"),
    ("residual_share = 1", "residual_share = 1.5", "[spark] residual_share: must lie in (0, 1]"),
    ("residual_share = 1", 'residual_share = "0.9"', "[spark] residual_share: expected a number"),
    ("tail_rate = 0.0", "tail_rate = true", "[spark] tail_rate: expected a number"),
    ("tail_rate = 0.0", "tail_rate = -0.25", "[spark] tail_rate: must lie in [0, 1], got -0.25"),
    ("tail_rate = 0.0\n", "", "[spark] tail_rate: missing key"),
    ('"onnxruntime"', '"tensorflow"', "[runtime] backend: expected one of auto, onnxruntime, torch"),
    ('["CPUExecutionProvider"]', '["CUDA"]', "[runtime] execution_providers: 'CUDA'"),
    ('["CPUExecutionProvider"]', "[]", "[runtime] execution_providers: expected a non-empty list"),
    ("threads = 4", "threads = 8", "[runtime] threads: must be at most [board] cores (4)"),
    ("jacobian_chunk = 128", "jacobian_chunk = -1", "[runtime] jacobian_chunk"),
    ('"aarch64"', '"sparc"', "[board] architecture"),
    ("compute_scale = 9.0", "compute_scale = 0", "[board] compute_scale: must be positive, got 0"),
    ("compute_scale = 9.0\n", "", "[board] compute_scale: missing key"),
    ("[link]", "[links]", "[links]: unknown table"),
])
def test_invalid_profile_is_one_line_naming_file_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VALID
    path = _write(tmp_path, "bad", VALID.replace(old, new, 1))
    with pytest.raises(ValueError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_missing_table_and_broken_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[link\]: missing table"):
        load_profile(_write(tmp_path, "nolink", VALID.split("[link]")[0]))
    with pytest.raises(ValueError, match="not valid TOML"):
        load_profile(_write(tmp_path, "broken", "[board\n"))
    with pytest.raises(ValueError, match="cannot read profile"):
        load_profile(tmp_path / "absent.toml")


def test_find_profile_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    _write(tmp_path, "alpha", VALID)
    _write(tmp_path, "beta", VALID)
    with pytest.raises(ValueError, match=r"unknown profile 'gamma'; known profiles: alpha, beta$"):
        find_profile("gamma", tmp_path)
    with pytest.raises(ValueError, match="rpi-4, rpi-5, rpi-zero-2w"):
        find_profile("rpi-3")


def test_environment_variable_and_paths_select_other_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "mine", VALID)
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    assert profile_dir() == tmp_path
    assert [profile.name for profile in list_profiles()] == ["mine"]
    assert find_profile(str(path)).board.name == "Test board"
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=f"{PROFILES_ENV}"):
        list_profiles()
