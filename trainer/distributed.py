"""Data-parallel training with torchrun: one run, several processes, DistributedDataParallel.

    torchrun --nproc_per_node 2 -m trainer.run --routings 3            # 2 processes on this machine

Switched on by torchrun's environment (WORLD_SIZE > 1), as in nanoGPT; a plain `python -m trainer.run`
is one process and none of this runs. Backend: gloo on CPU, nccl on CUDA (one GPU per process, by
LOCAL_RANK).

How a step stays the step of one process with the same global batch:
- every rank holds the whole dataset and the same generator (same seed), so every rank draws the same
  shuffle and the same random shifts for the global batch, then keeps its own contiguous shard of it;
- each rank's loss is its shard's mean scaled by world * shard / batch, so DDP's average of the ranks'
  gradients is the gradient of the global batch's mean, uneven last batches included;
- the epoch's totals (losses, correct counts) are summed over ranks before they are logged;
- only rank 0 writes the run directory; every rank reads state.pt on --resume (the run directory must
  be visible to all ranks: on one machine it is, across machines put it on a shared filesystem).
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part(self, size: int) -> slice:
        """This rank's contiguous slice of a global batch of `size` (sizes differ by at most one)."""
        if not self.enabled:
            return slice(0, size)
        base, extra = divmod(size, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def loss_scale(self, shard_size: int, global_size: int) -> float:
        """Factor on this rank's mean loss so that DDP's gradient average is the global batch mean's."""
        return self.world_size * shard_size / global_size if self.enabled else 1.0

    def sum(self, totals: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (in place); the tensor itself on one process."""
        if self.enabled:
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        return totals

    def all_ranks(self, flag: bool, device: torch.device) -> bool:
        """Whether `flag` holds on every rank (one tiny all-reduce on `device`, which the backend must
        serve; `flag` itself on one process). Every rank must call it the same number of times."""
        if not self.enabled:
            return flag
        holder = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(holder, op=dist.ReduceOp.MIN)
        return bool(holder.item() == 1.0)

    def broadcast(self, value):
        """Rank 0's value on every rank (any picklable object)."""
        if not self.enabled:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = Distributed()


def from_environment() -> Distributed:
    """torchrun's RANK, WORLD_SIZE and LOCAL_RANK; one process when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    return Distributed(rank=int(os.environ["RANK"]), world_size=world_size,
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def start(processes: Distributed, device: torch.device) -> torch.device:
    """Join the process group; returns this rank's device (cuda:LOCAL_RANK on CUDA)."""
    if not processes.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # a generous timeout: rank 0 writes the run directory at each epoch's end while the others wait
    dist.init_process_group(backend=backend, rank=processes.rank, world_size=processes.world_size,
                            timeout=dt.timedelta(minutes=30))
    return device


def stop(processes: Distributed) -> None:
    if processes.enabled and dist.is_initialized():
        dist.destroy_process_group()
