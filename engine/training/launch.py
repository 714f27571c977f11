"""How a training run is run: joining torchrun's process group, and stopping cleanly on Ctrl-C.

``cest train`` and ``cest finetune`` both stop through :func:`stop_on_sigint`: the first Ctrl-C
(or the app's SIGINT) ends the current step, which is checkpointed; a second one interrupts at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass

import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when there is one (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


@contextlib.contextmanager
def stop_on_sigint():
    """An Event the first Ctrl-C (or the app's SIGINT) sets: the run ends its step, checkpoints and
    stops. A second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # DDP ranks must stop at the same step: not this way
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C interrupts as usual
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
