"""The inventory: boards and fleet settings parsed into frozen values; every mistake is one line naming where."""

from pathlib import Path

import pytest

from edge_agent.deploy.inventory import Inventory, InventoryError, SshTarget, load_inventory

GOOD = """
certs = "certs"
known_hosts = "known_hosts"

[run]
run = "kitchen-fleet"
setting = "edge"
rounds = 0

[[board]]
name = "kitchen"
ssh = "pi@192.168.1.23:2222"
profile = "rpi-4"
shard = "0/8"
listen = "0.0.0.0:50051"
advertise = "eth0"

[[board]]
name = "garage"
ssh = "garage.lan"
profile = "rpi-zero-2w"
shard = "5/8"
id = "garage-pi"
listen = "0.0.0.0:50051"
"""


def _load(tmp_path: Path, text: str) -> Inventory:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return load_inventory(path)


def test_a_good_inventory_gives_each_board_its_target_shard_and_id_and_resolves_paths_beside_the_file(
        tmp_path: Path) -> None:
    inventory = _load(tmp_path, GOOD)
    kitchen, garage = inventory.boards
    assert kitchen.ssh == SshTarget("pi", "192.168.1.23", 2222) and str(kitchen.ssh) == "pi@192.168.1.23:2222"
    assert (kitchen.shard, kitchen.clients, kitchen.agent_id, kitchen.advertise) == (0, 8, "client-0", "eth0")
    assert garage.ssh == SshTarget(None, "garage.lan", 22) and garage.agent_id == "garage-pi"
    assert inventory.certs == tmp_path / "certs"
    assert inventory.known_hosts == tmp_path / "known_hosts"
    assert inventory.run == (("run", "kitchen-fleet"), ("setting", "edge"), ("rounds", 0))
    assert [board.name for board in inventory.select("garage")] == ["garage"]
    with pytest.raises(InventoryError, match="no board named 'attic'"):
        inventory.select("garage,attic")


@pytest.mark.parametrize(("change", "message"), [
    (("certs = \"certs\"", ""), "give `certs = \"DIR\"`"),
    (("certs = \"certs\"", "certs = \"certs\"\ninsecure = true"), "exclude each other"),
    (("ssh = \"garage.lan\"", "ssh = \"garage.lan:99999\""), r"\[\[board\]\] 2 \(garage\): ssh: expected user@host"),
    (("shard = \"5/8\"", "shard = \"0/8\""), "boards kitchen and garage have the same shard"),
    (("shard = \"5/8\"", "shard = \"5/9\""), "the same M"),
    (("shard = \"5/8\"", "shard = \"8/8\""), "0 <= i < M"),
    (("name = \"garage\"", "name = \"kitchen\""), "the same name"),
    (("listen = \"0.0.0.0:50051\"\nadvertise", "listen = \"eth0\"\nadvertise"), "listen: expected host:port"),
    (("rounds = 0", "rounds = 0\nshard = \"1/8\""), r"\[run\] shard: set per board"),
    (("rounds = 0", "rounds = 0\nwait_peers = 3"), r"\[run\] wait_peers: not an `edge-agent run` option"),
    (("advertise = \"eth0\"", "advertise = \"eth0\"\ncolour = \"red\""), "colour: unknown key in the board"),
    (("profile = \"rpi-zero-2w\"\n", ""), r"\(garage\): profile: missing"),
    (("known_hosts", "python = \"python3; rm -rf /\"\nknown_hosts"), "python: .* must be a command or path"),
])
def test_each_inventory_mistake_is_one_line_that_names_the_file_and_where(
        tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(InventoryError, match=message) as caught:
        _load(tmp_path, GOOD.replace(*change, 1))
    assert str(caught.value).startswith(str(tmp_path / "fleet.toml")) and "\n" not in str(caught.value)


def test_an_inventory_that_is_not_toml_or_has_no_boards_says_so(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not valid TOML"):
        _load(tmp_path, "[[board]\n")
    with pytest.raises(InventoryError, match="no boards"):
        _load(tmp_path, "insecure = true\n")
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "absent.toml")
