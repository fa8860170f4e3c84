"""The bounded host buffer holding swapped-out KV, and the block copies to and from the pool.

Worker side of the connector (runs where the model runner holds the KV tensors). vLLM's per-layer
KV tensors differ by backend (CPU: [blocks, 2, ...], flash-attention on GPU: [2, blocks, ...]),
so the block dimension is found by its size rather than assumed. A record keeps one host tensor
per layer with its blocks stacked first.

On CUDA the copies run on a side stream into pinned memory and overlap the forward pass; a
transfer is reported finished only once its copy event has completed. On CPU a copy is a
synchronous memcpy and completes at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from vllm.logger import init_logger

from engine_worker.engine_core.kv_swap.transfers import BlockCopy

log = init_logger(f"vllm.{__name__}")  # under "vllm": the only logger the engine-core process configures


def block_dim(shape: tuple[int, ...], num_blocks: int, cuda: bool = False) -> int:
    """The dimension of a layer's KV tensor that indexes blocks: the outermost one, or the one
    after the K/V pair ([2, blocks, ...], the GPU attention backends' layout)."""
    kv_first = len(shape) > 1 and shape[0] == 2 and shape[1] == num_blocks
    if kv_first and (cuda or shape[0] != num_blocks):
        return 1
    if shape[0] == num_blocks:
        return 0
    raise ValueError(f"KV shape {shape} has no block dimension of size {num_blocks} where vLLM puts it")


@dataclass
class _Layer:
    tensor: torch.Tensor
    dim: int


@dataclass
class _Done:
    """A transfer's last chunk, waiting for its copy to complete."""

    request_id: str
    direction: str
    key: str
    event: torch.cuda.Event | None = None


@dataclass(frozen=True)
class CompletedTransfer:
    request_id: str
    direction: str
    key: str
    seconds: float


@dataclass
class TransferTimes:
    """Seconds spent copying each record, per direction (reported back to the scheduler side)."""

    out_s: dict[str, float] = field(default_factory=dict)
    in_s: dict[str, float] = field(default_factory=dict)


class HostStore:
    def __init__(self, kv_caches: dict[str, torch.Tensor], num_blocks: int):
        self._layers = {name: _Layer(t, block_dim(tuple(t.shape), num_blocks, t.is_cuda))
                        for name, t in kv_caches.items()}
        first = next(iter(kv_caches.values()))
        self._cuda = first.is_cuda
        self._stream = torch.cuda.Stream(device=first.device) if self._cuda else None
        self._records: dict[str, dict[str, torch.Tensor]] = {}
        self._waiting: list[_Done] = []
        self.times = TransferTimes()

    def held_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for r in self._records.values() for t in r.values())

    def _record(self, key: str, size: int) -> dict[str, torch.Tensor]:
        record = self._records.get(key)
        if record is None:
            record = {}
            for name, layer in self._layers.items():
                shape = list(layer.tensor.shape)
                shape.pop(layer.dim)
                record[name] = torch.empty([size, *shape], dtype=layer.tensor.dtype, pin_memory=self._cuda)
            self._records[key] = record
        return record

    def run(self, copies: list[BlockCopy], record_sizes: dict[str, int]) -> None:
        if not copies:
            return
        started = time.perf_counter()
        if self._stream is not None:
            # Let the side stream see every write the compute stream queued to these blocks.
            self._stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._stream):
                self._copy_all(copies, record_sizes)
        else:
            self._copy_all(copies, record_sizes)
        elapsed = time.perf_counter() - started
        moved = sum(len(c.device_blocks) for c in copies)
        for c in copies:  # split the step's copy time by blocks moved
            share = elapsed * len(c.device_blocks) / moved
            times = self.times.out_s if c.direction == "out" else self.times.in_s
            times[c.key] = times.get(c.key, 0.0) + share
            if c.last:
                event = None
                if self._stream is not None:
                    event = torch.cuda.Event()
                    event.record(self._stream)
                self._waiting.append(_Done(c.request_id, c.direction, c.key, event))

    def _copy_all(self, copies: list[BlockCopy], record_sizes: dict[str, int]) -> None:
        for c in copies:
            record = self._record(c.key, record_sizes[c.key]) if c.direction == "out" else self._records[c.key]
            rows = torch.tensor(c.record_blocks, dtype=torch.long)
            for name, layer in self._layers.items():
                device_index = torch.tensor(c.device_blocks, dtype=torch.long, device=layer.tensor.device)
                if c.direction == "out":
                    chunk = layer.tensor.index_select(layer.dim, device_index).movedim(layer.dim, 0)
                    record[name].index_copy_(0, rows, chunk.to("cpu", non_blocking=self._cuda))
                else:
                    chunk = record[name].index_select(0, rows).to(layer.tensor.device, non_blocking=self._cuda)
                    layer.tensor.index_copy_(layer.dim, device_index, chunk.movedim(0, layer.dim))

    def completed(self) -> list[CompletedTransfer]:
        """Transfers whose last copy has finished, with their total copy time."""
        done, still = [], []
        for pending in self._waiting:
            if pending.event is not None and not pending.event.query():
                still.append(pending)
                continue
            times = self.times.out_s if pending.direction == "out" else self.times.in_s
            done.append(CompletedTransfer(pending.request_id, pending.direction, pending.key,
                                          times.pop(pending.key, 0.0)))
            if pending.direction == "in":
                self._records.pop(pending.key, None)  # back in the pool: the host copy is no longer needed
        self._waiting = still
        return done

    def drop(self, key: str) -> None:
        self._records.pop(key, None)
