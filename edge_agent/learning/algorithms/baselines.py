"""Local mini-batch SGD of the baselines DFedAvg, DFedAvgM and D-PSGD, vectorised across clients (numpy only).

SPEC section 5: each round every client runs local SGD from its own weights, then averages with its neighbours
(the averaging lives with the round, not here). On the MLP all M clients step together on stacked arrays; a client
whose data is used up for the current step sits that step out, so each client gets exactly the batches a per-client
loop would give it. Any other model steps client by client, on the gradients its vjp gives.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.learning.mlp import FloatArray, MLPSpec, one_hot, softmax
from edge_agent.learning.models.contract import Model


@dataclass(frozen=True)
class LocalSGDConfig:
    """Hyper-parameters of one round of local SGD (heavy-ball momentum like torch.optim.SGD, no weight decay)."""

    lr: float
    batch_size: int
    local_epochs: int
    momentum: float

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size}")
        if self.local_epochs < 1:
            raise ValueError(f"local epochs must be a positive integer, got {self.local_epochs}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")


BASELINES: Mapping[str, LocalSGDConfig] = types.MappingProxyType({
    "dfedavg": LocalSGDConfig(lr=0.1, batch_size=25, local_epochs=20, momentum=0.0),
    "dfedavgm": LocalSGDConfig(lr=0.01, batch_size=50, local_epochs=20, momentum=0.9),
    "dpsgd": LocalSGDConfig(lr=0.1, batch_size=10, local_epochs=1, momentum=0.0),
})


def layer_gradients(spec: MLPSpec, weights: FloatArray, x: FloatArray, y: np.ndarray, sample_weights: FloatArray,
                    out: Sequence[tuple[FloatArray, FloatArray]] | None = None) -> list[tuple[FloatArray, FloatArray]]:
    """Per layer (dW (M, out, in), db (M, out)) of sum_b sample_weights[m, b] * CE(model m on x[m, b], y[m, b]).

    weights (M, d) stacked flat vectors, x (M, B, in), y (M, B) int, sample_weights (M, B); with sample_weights =
    mask / count this is the gradient of the mean loss over each model's valid samples. `out`, contiguous arrays
    of those shapes, is reused across steps: a fresh 100 MB gradient per step costs more in page faults than the
    matmul, and np.matmul into strided views of a flat (M, d) array is slow too.
    """
    layers = spec.layers(weights)
    activations = [x]  # inputs of each layer, (M, B, fan_in)
    h = x
    for index, (weight, bias) in enumerate(layers):
        h = np.matmul(h, weight.transpose(0, 2, 1))
        h += bias[:, None, :]
        if index < len(layers) - 1:
            np.maximum(h, 0, out=h)
            activations.append(h)
    # h holds the logits (M, B, C); turn it into d loss / d logits = sample_weight * (softmax - one_hot)
    h -= h.max(axis=-1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=-1, keepdims=True)
    m_index, b_index = np.indices(y.shape, sparse=True)
    h[m_index, b_index, y] -= 1
    h *= sample_weights[:, :, None].astype(h.dtype, copy=False)
    grads: list[tuple[FloatArray, FloatArray]] = []
    delta = h
    for index in range(len(layers) - 1, -1, -1):
        grad_weight, grad_bias = (None, None) if out is None else out[index]
        grads.append((np.matmul(delta.transpose(0, 2, 1), activations[index], out=grad_weight),
                      np.sum(delta, axis=1, out=grad_bias)))
        if index > 0:
            delta = np.matmul(delta, layers[index][0])
            delta *= activations[index] > 0
    return grads[::-1]


def cross_entropy_gradients(spec: MLPSpec, weights: FloatArray, x: FloatArray, y: np.ndarray,
                            sample_weights: FloatArray) -> FloatArray:
    """The gradients of `layer_gradients` as stacked flat vectors (M, d), in the layout of `weights`."""
    flat = np.empty(weights.shape, dtype=np.result_type(weights, x))
    for (grad_weight, grad_bias), (weight_view, bias_view) in zip(
            layer_gradients(spec, weights, x, y, sample_weights), spec.layers(flat), strict=True):
        weight_view[...] = grad_weight
        bias_view[...] = grad_bias
    return flat


def _epoch_indices(rngs: Sequence[np.random.Generator], sizes: np.ndarray, offsets: np.ndarray,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows into the stacked data (M, length) of each client's fresh permutation, padded, and its validity mask."""
    rows = np.zeros((len(rngs), length), dtype=np.intp)
    valid = np.zeros((len(rngs), length), dtype=bool)
    for client, (rng, size, offset) in enumerate(zip(rngs, sizes, offsets, strict=True)):
        rows[client, :size] = offset + rng.permutation(size)
        valid[client, :size] = True
    return rows, valid


def local_sgd(spec: Model, weights: FloatArray, clients: Sequence[tuple[FloatArray, np.ndarray]],
              config: LocalSGDConfig, seed: int, round_index: int,
              client_indices: Sequence[int] | None = None) -> FloatArray:
    """Weights (M, d) after each client's local SGD on its own (x (N_i, in), y (N_i,)) from its row of weights (M, d).

    Client i shuffles with np.random.default_rng([seed, round_index, i]), one permutation per epoch; batches are
    consecutive slices of it, the last one possibly smaller. Momentum buffers start at zero on every call.
    Runs in the dtype of `weights` (float32 in practice; float64 is accepted for checks). `client_indices` names
    the rows' clients when they are not 0..M-1: an agent trains client `shard` alone and draws that client's batches.
    """
    if weights.ndim != 2 or weights.shape != (len(clients), spec.num_params):
        raise ValueError(f"weights must have shape ({len(clients)}, {spec.num_params}), got {weights.shape}")
    indices = range(len(clients)) if client_indices is None else client_indices
    if len(indices) != len(clients):
        raise ValueError(f"{len(indices)} client indices for {len(clients)} clients")
    if not isinstance(spec, MLPSpec):
        return np.stack([_local_sgd_one(spec, w, x, y, config, np.random.default_rng([seed, round_index, client]))
                         for w, (x, y), client in zip(weights, clients, indices, strict=True)])
    dtype = weights.dtype if weights.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    w = np.array(weights, dtype=dtype)
    sizes = np.array([len(labels) for _, labels in clients], dtype=np.intp)
    if sizes.max(initial=0) == 0:
        return w
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x_all = np.concatenate([np.asarray(x, dtype=dtype).reshape(len(x), spec.sizes[0]) for x, _ in clients])
    y_all = np.concatenate([np.asarray(labels, dtype=np.intp) for _, labels in clients])
    rngs = [np.random.default_rng([seed, round_index, client]) for client in indices]
    batch = config.batch_size
    steps_per_epoch = -(-int(sizes.max()) // batch)
    # the buffer holds lr * (torch's momentum buffer), so a step is buffer = momentum * buffer + lr * grad; w -= buffer
    buffer = np.zeros_like(w) if config.momentum > 0 else None
    grad_buffers = [(np.empty_like(weight), np.empty_like(bias)) for weight, bias in spec.layers(w)]
    for _epoch in range(config.local_epochs):
        rows, valid = _epoch_indices(rngs, sizes, offsets, steps_per_epoch * batch)
        for step in range(steps_per_epoch):
            batch_valid = valid[:, step * batch : (step + 1) * batch]  # (M, B)
            counts = batch_valid.sum(axis=1)
            width = int(counts.max())
            batch_rows = rows[:, step * batch : step * batch + width]
            sample_weights = (batch_valid[:, :width] * (config.lr / np.maximum(counts, 1))[:, None]).astype(dtype)
            active = np.flatnonzero(counts)
            if len(active) == len(clients):
                _sgd_step(spec, w, buffer, x_all[batch_rows], y_all[batch_rows], sample_weights, config.momentum,
                          grad_buffers)
                continue
            # clients out of data for this step sit it out: step only the others, on copies of their rows
            w_active = w[active]
            buffer_active = None if buffer is None else buffer[active]
            active_rows = batch_rows[active]
            _sgd_step(spec, w_active, buffer_active, x_all[active_rows], y_all[active_rows], sample_weights[active],
                      config.momentum, grad_buffers)
            w[active] = w_active
            if buffer is not None and buffer_active is not None:
                buffer[active] = buffer_active
    return w


def _local_sgd_one(model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray, config: LocalSGDConfig,
                   rng: np.random.Generator) -> FloatArray:
    """One client's local SGD on any model: the batches, momentum and order of the vectorised MLP path, with the
    gradient of the batch's mean cross-entropy from the model's vjp."""
    w = np.array(weights, dtype=np.float32)
    buffer = np.zeros_like(w) if config.momentum > 0 else None
    labels = np.asarray(y, dtype=np.intp)
    for _epoch in range(config.local_epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            probabilities = softmax(model.logits(w, x[rows]).astype(np.float64))
            residual = (probabilities - one_hot(labels[rows], model.num_classes)) * (config.lr / len(rows))
            grad = model.vjp(w, x[rows], residual.astype(np.float32)).astype(np.float32)
            if buffer is None:
                w -= grad
                continue
            buffer *= np.float32(config.momentum)
            buffer += grad
            w -= buffer
    return w


def _sgd_step(spec: MLPSpec, w: FloatArray, buffer: FloatArray | None, x: FloatArray, y: np.ndarray,
              sample_weights: FloatArray, momentum: float, grad_buffers: list[tuple[FloatArray, FloatArray]]) -> None:
    """One SGD step in place on stacked weights w (M, d); sample_weights (M, B) already carry lr / batch count."""
    num_models = len(w)
    grads = layer_gradients(spec, w, x, y, sample_weights,
                            [(weight[:num_models], bias[:num_models]) for weight, bias in grad_buffers])
    decay = w.dtype.type(momentum)
    start = 0
    for grad_weight, grad_bias in grads:
        for grad in (grad_weight.reshape(num_models, -1), grad_bias):
            # 2-D column blocks of the flat arrays: numpy runs in-place ufuncs on them 3x faster than on 3-D views
            columns = slice(start, start + grad.shape[1])
            start += grad.shape[1]
            weights = w[:, columns]
            if buffer is None:
                weights -= grad
                continue
            velocity = buffer[:, columns]
            velocity *= decay
            velocity += grad
            weights -= velocity


def evaluate_accuracies(spec: Model, weights: FloatArray, x: FloatArray, y: np.ndarray,
                        max_bytes: int = 256 * 2**20) -> FloatArray:
    """Test accuracy (M,) of each of M models (weights (M, d)) on a shared test set x (N, in), y (N,).

    Models are taken in chunks so that the widest activation stays under `max_bytes`; the first layer of a chunk
    is one GEMM of x against the chunk's stacked first-layer weights.
    """
    if weights.ndim != 2 or weights.shape[1] != spec.num_params:
        raise ValueError(f"weights must have shape (M, {spec.num_params}), got {weights.shape}")
    if not isinstance(spec, MLPSpec):
        return np.array([accuracy_in_chunks(spec, w, x, y) for w in weights])
    dtype = weights.dtype if weights.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    x = np.asarray(x, dtype=dtype).reshape(len(x), spec.sizes[0])
    labels = np.asarray(y)
    num_models, num_samples = weights.shape[0], len(x)
    widest = max(spec.sizes[1:])
    chunk = max(1, min(num_models, max_bytes // max(1, num_samples * widest * dtype.itemsize)))
    correct = np.zeros(num_models, dtype=np.int64)
    for start in range(0, num_models, chunk):
        w = np.asarray(weights[start : start + chunk], dtype=dtype)
        layers = spec.layers(w)
        first_weight, first_bias = layers[0]
        m, fan_out, fan_in = first_weight.shape
        h = x @ first_weight.reshape(m * fan_out, fan_in).T  # (N, m * out)
        h = h.reshape(num_samples, m, fan_out).transpose(1, 0, 2)  # (m, N, out)
        h += first_bias[:, None, :]
        for weight, bias in layers[1:]:
            np.maximum(h, 0, out=h)
            h = np.matmul(h, weight.transpose(0, 2, 1))
            h += bias[:, None, :]
        correct[start : start + m] = (h.argmax(axis=-1) == labels[None, :]).sum(axis=1)
    return correct / max(1, num_samples)


def accuracy_in_chunks(model: Model, w: FloatArray, x: FloatArray, y: np.ndarray, chunk: int = 500) -> float:
    """Accuracy of weights w on (x, y), `chunk` samples at a time (a CNN's activations on 10,000 images are 1 GB);
    the MLP takes them all in one GEMM, as every recorded MLP run did."""
    chunk = max(chunk, len(x)) if isinstance(model, MLPSpec) else chunk
    hits = sum(int((model.logits(w, x[start : start + chunk]).argmax(axis=-1) == y[start : start + chunk]).sum())
               for start in range(0, len(x), chunk))
    return hits / max(1, len(x))
