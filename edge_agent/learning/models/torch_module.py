"""Any torch.nn.Module as a Model: its parameters as one flat vector, its Jacobian products through torch.func.

The flat layout is the module's parameters in `named_parameters()` order, each raveled row-major (for an
nn.Sequential of Linear layers, the MLP's own layout). Per-sample Jacobians are taken `chunk` samples at a time
(vmap over jacrev), projected at once with the round's CountSketch and dropped, so memory stays bounded by one
chunk's (n, C, d) whatever N is. Buffers (say BatchNorm's running statistics) stay as the factory made them:
only parameters are learned and exchanged. A model is named by its source (cnn, path/to/file.py:factory,
package.module:factory) and pickles as that name, so worker processes and Ray tasks rebuild it from the same
source. torch is imported here and nowhere below it, so boards without torch never load this module.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from edge_agent.learning.jacobian import DenseJacobian, FloatArray, JacobianOperator
from edge_agent.learning.models import cnn, layer_jacobian
from edge_agent.learning.models.contract import CountSketch, ModelError, Projection
from edge_agent.learning.models.source import file_factory, files_digest, model_files
from edge_agent.learning.projection import IdentityProjection

Factory = Callable[[tuple[int, ...], int], nn.Module]
"""(input shape of one sample, class count) -> a module mapping (N, *input_shape) to logits (N, C)."""

# One chunk's per-sample Jacobian (n, C, d) float32 stays under this many bytes (twice it while it is signed).
JACOBIAN_CHUNK_BYTES = 16 * 2**20
LOGITS_CHUNK = 500  # samples per forward pass when only logits are wanted


Method = TypeVar("Method", bound=Callable[..., Any])


def _one_at_a_time(method: Method) -> Method:
    """Run `method` holding the model's lock (see TorchModuleModel._lock)."""
    @functools.wraps(method)
    def locked(self: TorchModuleModel, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return cast(Method, locked)


def resolve_factory(source: str) -> tuple[Factory, str]:
    """The factory `source` names and the SHA-256 of the file that defines it (the source it was loaded from)."""
    if source == "cnn":
        return cnn.reference_cnn, _file_digest(cnn.__file__)
    where, _, name = source.rpartition(":")
    if not where or not name:
        raise ModelError(f"--model {source!r}: expected mlp, cnn, path/to/file.py:factory or package.module:factory")
    if where.endswith(".py"):  # the file and the modules beside it that it imports
        module, digest = _module_from_file(Path(where)), files_digest(model_files(Path(where)))
    else:
        module = _module_by_name(where)
        digest = _file_digest(module.__file__)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ModelError(f"--model {source!r}: {where} has no function {name!r}")
    return factory, digest


class TorchModuleModel:
    """The module `source` builds for `input_shape` and `num_classes`, served through torch.func on the CPU."""

    def __init__(self, source: str, input_shape: tuple[int, ...], num_classes: int) -> None:
        self.source = source
        # what a run names: a file factory by its file's name, since boards keep the same file at different paths
        named = file_factory(source)
        self.name = source if named is None else f"{named[0].name}:{named[1]}"
        self.factory, self.digest = resolve_factory(source)
        self._input_shape, self._num_classes = tuple(input_shape), num_classes
        try:
            self.module = self._build(0).eval()
        except ModelError:
            raise
        except Exception as error:  # a user's factory may fail in any way; one line, naming the model
            raise ModelError(f"--model {source!r} does not build for samples {self._input_shape} and {num_classes} "
                             f"classes: {type(error).__name__}: {error}") from None
        self._names = [name for name, _ in self.module.named_parameters()]
        self._shapes = [tuple(p.shape) for _, p in self.module.named_parameters()]
        self._sizes = [math.prod(shape) for shape in self._shapes]
        self._buffers = dict(self.module.named_buffers())
        self._plan = layer_jacobian.plan_layers(self.module)  # Linear and Conv layers: C backward passes a chunk
        # functional_call swaps the module's parameters in place and the layer path hooks its layers, so the threads
        # of an agent (a reply being computed, the test accuracy, its own requests) take turns on the one module
        self._lock = threading.RLock()
        if not self._names:
            raise ModelError(f"--model {source!r}: the module has no parameters")
        try:
            logits = self.logits(self.init_weights(0), np.zeros((2, math.prod(self._input_shape)), np.float32))
        except Exception as error:
            raise ModelError(f"--model {source!r} fails on samples of shape {self._input_shape}: "
                             f"{type(error).__name__}: {error}") from None
        if logits.shape != (2, num_classes):
            raise ModelError(f"--model {source!r}: logits of 2 samples have shape {logits.shape}, expected "
                             f"(2, {num_classes}) for {num_classes} classes")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its source: a worker rebuilds the same module (and checks the same digest)."""
        return (_rebuilt, (self.source, self._input_shape, self._num_classes, self.digest))
    def _build(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory(self._input_shape, self._num_classes)
        if not isinstance(module, nn.Module):
            raise ModelError(f"--model {self.name!r}: the factory returned {type(module).__name__}, not a "
                             "torch.nn.Module")
        return module

    @property
    def num_params(self) -> int:
        return sum(self._sizes)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "source_sha256": self.digest,
                "parameters": [[name, list(shape)] for name, shape in zip(self._names, self._shapes, strict=True)]}

    def init_weights(self, seed: int) -> FloatArray:
        """The factory's own initialisation under torch.manual_seed(seed), flattened."""
        module = self._build(seed)
        shapes = [tuple(p.shape) for p in module.parameters()]
        if shapes != self._shapes:
            raise ModelError(f"--model {self.name!r}: the factory builds different parameter shapes from seed to seed")
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy().astype(np.float32)

    # --- torch.func plumbing ---------------------------------------------------------------------------------

    def _params(self, w: FloatArray) -> dict[str, Tensor]:
        flat = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        return {name: part.view(shape)
                for name, part, shape in zip(self._names, torch.split(flat, self._sizes), self._shapes, strict=True)}

    def _inputs(self, x: FloatArray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(len(x), *self._input_shape)

    def _call(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        out: Tensor = functional_call(self.module, (params, self._buffers), (x,))
        return out

    def _flat(self, parts: dict[str, Tensor], lead: int) -> Tensor:
        """Per-parameter tensors (*lead dims, *shape) -> one (*lead dims, d) tensor in the flat layout."""
        return torch.cat([parts[name].reshape(*parts[name].shape[:lead], -1) for name in self._names], dim=-1)

    def _per_sample_jacobian(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """(n, C, d) float32: d f_c(x_i) / d w for each sample of x (by layers where it can, else vmap)."""
        if self._plan is not None:
            return layer_jacobian.per_sample_jacobian(self._plan, self._forward_at(params), x, self._num_classes)

        def one(p: dict[str, Tensor], sample: Tensor) -> Tensor:
            out: Tensor = self._call(p, sample[None])[0]
            return out
        parts = vmap(jacrev(one), in_dims=(None, 0))(params, x)
        return self._flat(parts, 2)

    def _forward_at(self, params: dict[str, Tensor]) -> Callable[[Tensor], Tensor]:
        """The module at `params` as a function of its input, in a graph (the layers' outputs get gradients)."""
        leaves = {name: value.detach().requires_grad_() for name, value in params.items()}
        return lambda inputs: self._call(leaves, inputs)

    def _chunk(self, dim: int | None = None) -> int:
        """Samples per chunk: one chunk's Jacobian, or with a layer plan and a sketch of `dim` buckets, its sketched
        factors (a Linear weight's per-sample sketch is out x m, not C x out x in), stay under the budget."""
        per_sample = self._num_classes * self.num_params
        if dim is not None and self._plan is not None:
            linear = [layer for layer in self._plan.layers.values() if isinstance(layer, nn.Linear)]
            weights = sum(layer.weight.numel() for layer in linear)
            per_sample += weights * (1 - self._num_classes) + sum(layer.out_features for layer in linear) * dim
        return max(1, JACOBIAN_CHUNK_BYTES // (4 * per_sample))

    # --- the contract ----------------------------------------------------------------------------------------

    @_one_at_a_time
    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        params = self._params(w)
        with torch.no_grad():
            parts = [self._call(params, self._inputs(x[start : start + LOGITS_CHUNK]))
                     for start in range(0, len(x), LOGITS_CHUNK)]
        if not parts:
            return np.zeros((0, self._num_classes), dtype=np.float32)
        return torch.cat(parts).numpy().astype(np.float32)

    @_one_at_a_time
    def jvp(self, w: FloatArray, x: FloatArray, v: FloatArray) -> FloatArray:
        inputs = self._inputs(x)
        out = jvp(lambda p: self._call(p, inputs), (self._params(w),), (self._params(v),))[1]  # (primal, tangent)
        result: FloatArray = out.detach().numpy().astype(np.float32)
        return result

    @_one_at_a_time
    def vjp(self, w: FloatArray, x: FloatArray, u: FloatArray) -> FloatArray:
        inputs = self._inputs(x)
        pull = vjp(lambda p: self._call(p, inputs), self._params(w))[1]  # (primal, pull-back)
        (grads,) = pull(torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32)))
        result: FloatArray = self._flat(grads, 0).detach().numpy()
        return result

    @_one_at_a_time
    def jacobian(self, w: FloatArray, x: FloatArray) -> tuple[JacobianOperator, FloatArray]:
        """The dense (N, C, d) Jacobian: N C d floats, so only for small models (NTK-DFL sends it whole)."""
        params, inputs = self._params(w), self._inputs(x)
        parts = [self._per_sample_jacobian(params, inputs[s : s + self._chunk()]).detach()
                 for s in range(0, len(x), self._chunk())]
        values = torch.cat(parts).numpy() if parts else np.zeros((0, self._num_classes, self.num_params), np.float32)
        return DenseJacobian(values), self.logits(w, x)

    @_one_at_a_time
    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection
                           ) -> tuple[FloatArray, FloatArray]:
        """J P chunk by chunk: each chunk's per-sample Jacobian, signed and summed into its buckets, then dropped."""
        if isinstance(projection, IdentityProjection):
            jacobian, logits = self.jacobian(w, x)
            assert isinstance(jacobian, DenseJacobian)
            return jacobian.values, logits
        if not isinstance(projection, CountSketch):
            raise TypeError(f"model {self.name} takes a CountSketch projection (tensorsketch), "
                            f"not {type(projection).__name__}")
        params, inputs = self._params(w), self._inputs(x)
        bucket = torch.from_numpy(np.array(projection.bucket, dtype=np.int64))  # a writable copy
        sign = torch.from_numpy(np.array(projection.sign, dtype=np.float32))
        out = torch.zeros((len(x), self._num_classes, projection.dim), dtype=torch.float32)
        step = self._chunk(projection.dim)
        for start in range(0, len(x), step):
            rows = slice(start, start + step)
            if self._plan is not None:
                out[rows] = layer_jacobian.projected_jacobian(self._plan, self._forward_at(params), inputs[rows],
                                                              self._num_classes, bucket, sign, projection.dim)
                continue
            jac = self._per_sample_jacobian(params, inputs[rows]).detach()
            jac *= sign
            out[rows].index_add_(2, bucket, jac)
        return out.numpy(), self.logits(w, x)


def _rebuilt(source: str, input_shape: tuple[int, ...], num_classes: int, digest: str) -> TorchModuleModel:
    model = TorchModuleModel(source, input_shape, num_classes)
    if model.digest != digest:
        raise ModelError(f"--model {source!r}: its source changed since the run began (sha256 {model.digest[:12]}, "
                         f"was {digest[:12]})")
    return model


def _module_from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelError(f"--model: no file {path}")
    name = f"edge_agent_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"--model: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as `python file.py` does: the file imports the modules beside it
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ModelError(f"--model: importing {path} failed: {type(error).__name__}: {error}") from None
    sys.modules[name] = module
    return module


def _module_by_name(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise ModelError(f"--model: cannot import {name}: {type(error).__name__}: {error}") from None


def _file_digest(path: str | None) -> str:
    return "unknown" if path is None else files_digest((Path(path),))
