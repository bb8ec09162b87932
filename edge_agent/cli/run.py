"""`edge-agent run`: one agent process (one board): serve, discover neighbours, train its shard round by round."""

from __future__ import annotations

import faulthandler
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from edge_agent.agent.config import AGENT_ALGORITHMS, AgentConfig
from edge_agent.agent.lifecycle import Ending, PathError, StopSignals
from edge_agent.agent.memory import bound_malloc
from edge_agent.agent.node import Node, cluster_tls
from edge_agent.agent.shard import load_shard, shard_of
from edge_agent.cli.addresses import check_host, host_port, resolve_addresses
from edge_agent.cli.config_file import ConfigCommand, checked, config_option, from_file, option_label, options_label
from edge_agent.cli.data_source import data_option, labelled_data
from edge_agent.cli.errors import OperatorError
from edge_agent.cli.options import apply_preset, method_configs, method_options, model_option, robust_option
from edge_agent.deploy.profiles import TORCH_DEVICES, BoardProfile, find_profile
from edge_agent.discovery.addresses import parse_listen
from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.discovery.peers import AGENT_ID_PATTERN, parse_peer_list
from edge_agent.learning.data import TRAIN_SIZE, DataNotFoundError
from edge_agent.learning.datasets import DEFAULT_SOURCE, LabelledData
from edge_agent.learning.datasets.fashion_mnist import FashionMnistLayout
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.learning.models.select import is_default, load_model
from edge_agent.learning.robust import RobustConfig
from edge_agent.learning.settings import SETTINGS
from edge_agent.learning.topology import client_ids
from edge_agent.runtime.backend import TORCH_EXTRA, BackendUnavailableError
from edge_agent.runtime.onnx_export import MissingKernelsError
from edge_agent.runtime.select import BACKEND_CHOICES, BackendChoice, choose_backend, torch_missing
from edge_agent.transport.core_log import CoreLogFilter
from edge_agent.transport.rates import parse_bitrate, parse_duration
from edge_agent.transport.throttle import LinkModel

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_CLIENTS = 4096  # a run's split is drawn for all M shards at start-up: 3.5 s at 4096, minutes past 50,000


def parse_shard(text: str) -> tuple[int, int]:
    """'i/M' -> (i, M), with a clear error for anything else."""
    try:
        index, total = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"expected i/M (e.g. 0/8), got {text!r:.40}") from None
    if total < 2 or not 0 <= index < total:
        raise ValueError(f"need M >= 2 and 0 <= i < M, got {text!r}")
    if total > MAX_CLIENTS:
        raise ValueError(f"a run has at most {MAX_CLIENTS} agents, got M = {total}")
    return index, total


def check_agent_id(agent_id: str) -> str:
    if not AGENT_ID_PATTERN.fullmatch(agent_id):
        raise ValueError(f"{agent_id!r:.60} must be 1-48 letters, digits, '-' or '_', starting with a letter or "
                         "digit")
    return agent_id


def _rate(text: str) -> str:
    parse_bitrate(text)
    return text


def _duration(text: str) -> str:
    parse_duration(text)
    return text


@click.command(cls=ConfigCommand)
@config_option
@click.option("--shard", required=True, callback=checked(parse_shard),
              help="This agent's share of the data: i/M (client i of M).")
@click.option("--id", "agent_id", callback=checked(check_agent_id),
              help="Agent id (default: the simulator's id for client i, e.g. client-3).")
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="edge", show_default=True,
              help="Named setting: samples per client, alpha, kappa, rounds (M comes from --shard).")
@click.option("--algorithm", type=click.Choice(list(AGENT_ALGORITHMS)), default="spark", show_default=True)
@click.option("--rounds", type=click.IntRange(min=0),
              help="Rounds to run (default: the setting's); 0 trains until stopped (SIGTERM or Ctrl-C): SPARK's "
                   "stages then follow the setting's rounds, after which it trains without momentum.")
@click.option("--run", "run_name", help="Run name shared by every agent of the run (default: a hash of the settings "
              "that must agree). Agents of other runs are never members, and their calls are refused.")
@click.option("--partition", "partition_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the split from an npz file instead of generating it.")
@method_options
@robust_option
@click.option("--host", callback=checked(check_host),
              help="IP address to listen on and advertise (default: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default: 0, any free port).")
@click.option("--listen", callback=checked(parse_listen),
              help="ADDR:PORT to listen on, e.g. 0.0.0.0:50051 or [::]:50051 (every interface; port 0: any free "
                   "one). Instead of --host/--port, with --advertise.")
@click.option("--advertise", help="Address told to peers (mDNS, PeerInfo): an IP of this machine or an interface "
              "name (eth0: its IPv4 address). Default: the --listen address, or for 0.0.0.0 or [::] the address of "
              "the default route.")
@click.option("--prometheus-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a free port; default: off).")
@click.option("--uplink", default="unlimited", callback=checked(_rate),
              help="Uplink rate, e.g. 2mbit (default: the profile's).")
@click.option("--downlink", default="unlimited", callback=checked(_rate),
              help="Downlink rate, e.g. 10mbit (default: the profile's).")
@click.option("--latency", default="0", callback=checked(_duration),
              help="Added one-way latency, e.g. 20ms (default: the profile's).")
@click.option("--chunk-size", type=click.IntRange(1024, 16 << 20), default=1 << 20, show_default=True,
              help="Bytes per streamed chunk.")
@click.option("--peers", default="", callback=checked(lambda text: tuple(parse_peer_list(text))),
              help="Static peers host:port,... (for networks without multicast).")
@click.option("--no-mdns", is_flag=True, help="Do not advertise or browse with mDNS.")
@click.option("--service-type", default=SERVICE_TYPE, show_default=True, hidden=True)
@click.option("--wait-peers", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds to wait for all M agents before the first round (then it starts with those it found).")
@click.option("--stall-window", type=click.FloatRange(min=0.5), default=20.0, show_default=True,
              help="Seconds a transfer may move nothing, or a neighbour send no weights, before it is left out of "
                   "the round (a slow transfer that keeps moving is never cut).")
@click.option("--metrics", type=click.Path(dir_okay=False, path_type=Path), help="Per-round JSON lines file.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write weights and momentum each round; resume from them on restart.")
@data_option
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Fashion-MNIST directory.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES),
              help="Kernels for the neighbour side (projected Jacobians, scoring); default: the profile's (generic: "
                   "auto, which takes torch where it imports, else onnxruntime where the exported kernels are, else "
                   "numpy). The start-up line says which and why.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Intra-op threads of the kernel backend (default: the profile's).")
@click.option("--jacobian-chunk", type=click.IntRange(min=1),
              help="Samples per kernel call on the neighbour side (default: the profile's): bounds its memory, and "
                   "a Jacobian reply is sent a chunk at a time as the chunks are computed.")
@click.option("--no-overlap", is_flag=True,
              help="Compute a Jacobian reply whole before sending it (the same bits; for benchmarks).")
@click.option("--profile", default="generic", show_default=True, callback=checked(find_profile),
              help="Board profile (see `edge-agent profiles list`): default links, projection, precision, rows. "
                   "Flags given explicitly win over the profile.")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The cluster's certs folder (`edge-agent certs`): ca.crt, this agent's <id>.crt and <id>.key, "
                   "revoked.crl. Every connection is then mutual TLS and only the cluster's boards take part.")
@click.option("--insecure", is_flag=True,
              help="Plaintext, for labs: any host on the network can join the run and read its data.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors.")
@model_option
@click.pass_context
def run(ctx: click.Context, /, certs_dir: Path | None, insecure: bool, backend: str | None, threads: int | None,
        jacobian_chunk: int | None, no_overlap: bool, profile: BoardProfile, shard: tuple[int, int],
        agent_id: str | None, setting: str, algorithm: str, rounds: int | None, run_name: str | None,
        partition_file: Path | None, host: str | None, port: int | None, listen: tuple[str, int] | None,
        advertise: str | None, prometheus_port: int | None, uplink: str, downlink: str, latency: str, chunk_size: int,
        peers: tuple[tuple[str, int], ...], no_mdns: bool, service_type: str, wait_peers: float, stall_window: float,
        metrics: Path | None, checkpoint_dir: Path | None, data_source: str, data_dir: Path | None, quiet: bool,
        robust: str, model: str, **method: Any) -> None:
    """Run one agent: find its neighbours, exchange projected Jacobians over throttled gRPC links, train.

    Every agent of a run needs the same --setting, --seed, method flags and M; each gets its own i. A neighbour
    that leaves, stalls or restarts is left out of the rounds it misses; a restarted agent resumes from its
    checkpoint and joins the fleet's round. SIGTERM or Ctrl-C stops it cleanly (exit status 0).
    Mistakes in the arguments, paths or address give one line and exit status 2.

    A board reads its options from `--config agent.toml` (keys: the long option names without '--', e.g.
    shard = "3/8", checkpoint-dir = "state/checkpoints", insecure = false; relative paths are relative to the file,
    see examples/agent.toml); flags given win over the file.
    To listen on every interface and tell peers the LAN address: --listen 0.0.0.0:50051 --advertise eth0.
    """
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bound_malloc()  # before the data and the server threads: a board's peak RSS stays flat round after round
    index, total = shard
    addresses = resolve_addresses(ctx, host, port, listen, advertise)
    certs_dir = check_security(ctx, certs_dir, insecure)
    base = SETTINGS[setting]
    labelled = _other_data(ctx, data_source, data_dir)  # None: Fashion-MNIST, read lean once the shard is known
    layout = labelled or FashionMnistLayout()
    try:
        spec = load_model(model, layout.input_shape, layout.num_classes)
        uplink = _unless_given(ctx, "uplink", uplink, profile.link.uplink)
        downlink = _unless_given(ctx, "downlink", downlink, profile.link.downlink)
        latency = _unless_given(ctx, "latency", latency, profile.link.latency)
        for key, value in asdict(profile.spark).items():  # each [spark] key is the method flag of its name
            method[key] = _unless_given(ctx, key, method[key], value)
        ntk, spark, weights_codec = method_configs(**apply_preset(ctx, method))
        if rounds == 0:  # a service: once SPARK's schedule is over, it trains on without momentum (docs/method.md)
            spark = replace(spark, momentum_after_schedule=False)
        kernels = kernel_backend(ctx, algorithm, backend, profile, spark.projection.dim, spec)
        config = AgentConfig(
            agent_id=agent_id if agent_id is not None else client_ids(total)[index], shard=index,
            clients=total, setting=setting, algorithm=algorithm, rounds=base.rounds if rounds is None else rounds,
            schedule_rounds=base.rounds, run_name=run_name, stall_s=stall_window,
            samples_per_client=base.samples_per_client, alpha=base.alpha, kappa=base.kappa, seed=method["seed"],
            partition_file=partition_file, data=data_source, data_digest=labelled.digest if labelled else "",
            host=addresses.advertise, port=addresses.port,
            listen_host=addresses.listen_host if addresses.listens_elsewhere else None,
            prometheus_port=prometheus_port, link=LinkModel.parse(uplink, downlink, latency), chunk_size=chunk_size,
            peers=peers, mdns=not no_mdns, service_type=service_type,
            wait_peers_s=wait_peers, metrics=metrics, checkpoint_dir=checkpoint_dir, profile=profile.name, ntk=ntk,
            spark=spark, weights_codec=weights_codec, backend=kernels.name,
            providers=kernel_providers(profile, kernels.name), threads=threads or profile.runtime.threads,
            jacobian_chunk=jacobian_chunk or profile.runtime.jacobian_chunk, overlap=not no_overlap, certs=certs_dir,
            robust=RobustConfig(robust), model=model,  # type: ignore[arg-type]
            model_identity=None if is_default(spec) else json.dumps(spec.identity(), sort_keys=True),
        )
    except ValueError as error:
        raise OperatorError(str(error)) from error
    try:
        cluster_tls(config)  # this board's certificate and key, checked before the data is loaded
    except ValueError as error:
        raise OperatorError(f"{option_label(ctx, 'certs_dir')}: {error}") from error
    try:
        data, test = load_shard(config, data_dir) if labelled is None else shard_of(config, labelled)
        node = Node(config, data, test, spec, len(labelled.train) if labelled else TRAIN_SIZE)
    except MissingKernelsError as error:  # the command that makes them, for this board's profile when it fits
        fits = profile.spark.proj_dim == error.dim
        for_data = "" if data_source == DEFAULT_SOURCE else f" --data {data_source}"  # its own input size
        raise click.ClickException(error.line(profile.name + for_data) if fits else str(error)) from error
    except DataNotFoundError as error:
        if data_dir is not None:
            raise OperatorError(f"{option_label(ctx, 'data_dir')}: {error}") from error
        raise click.ClickException(str(error)) from error
    except (ValueError, BackendUnavailableError) as error:
        raise click.ClickException(str(error)) from error
    signals = StopSignals(node.stop)
    signals.install()
    core_log = CoreLogFilter()  # gRPC core's lines to stderr, failed TLS handshakes at a bounded rate
    core_log.start()
    faulthandler.enable(sys.stderr, all_threads=True)  # a fatal signal in C code still leaves its threads' stacks
    try:
        status, reason = serve_and_train(node, config, addresses.shown, certs_dir, total, signals, kernels)
    except PathError as error:
        status, reason = 2, f"{option_label(ctx, error.option)} {error}"
    except (OSError, ValueError, RuntimeError) as error:
        status, reason = 2, str(error)
    except KeyboardInterrupt:  # a second signal: stop without waiting for the phase
        status, reason = 1, f"stopped at once by a second {signals.received or 'signal'}"
    except Exception as error:  # a bug: its traceback, then the same last line and summary as any other end
        log.exception("%s failed", config.agent_id)
        status, reason = 1, f"{type(error).__name__}: {error}"
    finally:
        node.close()
    node.agent.write_summary(Ending(status, reason, signals.received))
    faulthandler.disable()
    core_log.stop()
    if status == 2:
        raise OperatorError(reason)
    if status:
        raise click.ClickException(f"{config.agent_id} exits with status {status}: {reason}")
    click.echo(f"{config.agent_id} exits with status 0: {reason}", err=True)


def serve_and_train(node: Node, config: AgentConfig, shown: Callable[[int], str], certs_dir: Path | None,
                    total: int, signals: StopSignals, kernels: BackendChoice) -> tuple[int, str]:
    """Start serving, train until done or stopped, and say how it ended: (0, why)."""
    bound = node.start()
    metrics_at = (f", metrics on http://{host_port(config.host, node.prometheus_port)}/metrics"
                  if node.prometheus_port else "")
    security = (f"mutual TLS with the certificates in {certs_dir}" if certs_dir is not None else
                "INSECURE: plaintext, any host on this network can join the run and read its data")
    click.echo(f"{config.agent_id} serving on {shown(bound)} in run {node.identity.run_id}, "
               f"{len(node.agent.data)} samples{metrics_at}, kernels on {kernels}, waiting for {total - 1} peers; "
               f"{security}", err=True)
    node.run(lambda record: click.echo(_progress(record, config.rounds), err=True))
    done = node.agent.next_round
    if signals.received is not None:
        return 0, f"stopped by {signals.received} before round {done} ({done} rounds done); checkpoint kept"
    if node.agent.stopping.is_set():
        return 0, f"stopped before round {done} ({done} rounds done); checkpoint kept"
    return 0, f"finished its {config.rounds} rounds"


def check_security(ctx: click.Context, certs_dir: Path | None, insecure: bool) -> Path | None:
    """The certs folder (mutual TLS) or None for --insecure (plaintext, said out loud): exactly one is given, or
    one on the command line and the other in the config file, which the command line overrides."""
    if certs_dir is not None and insecure:
        if from_file(ctx, "certs_dir") == from_file(ctx, "insecure"):
            raise OperatorError(f"{options_label(ctx, 'certs_dir', 'insecure')} exclude each other: give one")
        certs_dir = None if from_file(ctx, "certs_dir") else certs_dir
    if certs_dir is None and not insecure:
        raise OperatorError("give --certs DIR (the cluster's certificates, see `edge-agent certs --help`) or, on a "
                            "lab network, --insecure")
    if certs_dir is not None and not certs_dir.is_dir():
        raise OperatorError(f"{option_label(ctx, 'certs_dir')}: {certs_dir} is not a folder")
    return certs_dir


def _other_data(ctx: click.Context, source: str, data_dir: Path | None) -> LabelledData | None:
    """The data --data names, loaded, unless it is Fashion-MNIST (None), which load_shard reads lean."""
    if source == DEFAULT_SOURCE:
        return None
    try:
        return labelled_data(source, data_dir)
    except OperatorError as error:
        label = option_label(ctx, "data_source")
        raise OperatorError(error.message.replace("--data", label, 1)) from None


def kernel_backend(ctx: click.Context, algorithm: str, backend: str | None, profile: BoardProfile,
                   dim: int, spec: Model) -> BackendChoice:
    """The backend SPARK's neighbour side runs on, and why: --backend (flag or file), else the profile's; `auto`
    resolved here. NTK-DFL's exact Jacobians and DFedAvg's SGD are numpy's whatever is asked; a model other than
    the MLP computes everything with torch, so it asks for torch (its kernels are not exported to ONNX)."""
    given = option_label(ctx, "backend") if backend is not None else f"profile {profile.name}"
    requested = backend or profile.runtime.backend
    if not isinstance(spec, MLPSpec):
        name = spec.identity()["name"]
        if requested not in ("torch", "auto"):
            raise ValueError(f"--model {name} runs on the torch backend only (its kernels are not exported to ONNX), "
                             f"not {requested} ({given}): give --backend torch")
        if torch_missing() is not None:
            raise ValueError(f"--model {name} needs torch: {TORCH_EXTRA}")
        return BackendChoice("torch", f"--model {name} computes with torch.func")
    if algorithm != "spark":
        return BackendChoice("numpy", f"{algorithm} computes with numpy")
    return choose_backend(requested, spec, dim, given)


def kernel_providers(profile: BoardProfile, backend: str) -> tuple[str, ...]:
    """The profile's execution providers that name devices of `backend`: torch devices for torch, ONNX Runtime
    providers for onnxruntime, none for numpy (an `auto` profile may list both kinds)."""
    if backend == "torch":
        return tuple(provider for provider in profile.runtime.execution_providers if provider in TORCH_DEVICES)
    if backend == "onnxruntime":
        return tuple(provider for provider in profile.runtime.execution_providers
                     if provider.endswith("ExecutionProvider"))
    return ()


def _unless_given(ctx: click.Context, name: str, given: T, from_profile: T) -> T:
    """The flag's value if the user gave it, else the profile's."""
    return from_profile if ctx.get_parameter_source(name) == ParameterSource.DEFAULT else given


def _progress(record: dict[str, Any], rounds: int) -> str:
    """The console line of a finished round: its 0-based index, as in the record and docs/records.md."""
    mb = (record["payload_sent_bytes"] + record["payload_received_bytes"]) / 1e6
    done = f" ({record['round'] + 1}/{rounds} done)" if rounds else ""
    return (f"{record['agent']} finished round {record['round']}{done}: test acc {record['test_accuracy']:.4f}, "
            f"{mb:.1f} MB moved, {record['seconds']['total']:.1f} s")
