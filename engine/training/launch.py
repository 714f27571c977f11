"""How a training run is run: joining torchrun's process group, and stopping cleanly on Ctrl-C.

``cest train`` and ``cest finetune`` both stop through :func:`stop_on_sigint`: the first Ctrl-C
(or the app's SIGINT) ends the current step, which is checkpointed; a second one interrupts at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from engine.errors import CestError


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


def run_until_stopped(work: Callable[[threading.Event], Path], resume_how: str) -> int:
    """A training command's outcome: run ``work(stop)`` under :func:`stop_on_sigint`, then exit 0
    (printing the weights' path on rank 0), 1 with one ``error:`` line for a CestError, or 130 when
    a second Ctrl-C interrupted at once. ``resume_how`` (e.g. "resuming continues") tells in the
    stop messages how to go on."""
    try:
        with stop_on_sigint() as stop:
            weights = work(stop)
    except CestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stopped at once: {resume_how} from the last checkpoint", file=sys.stderr)
        return 130
    if stop.is_set():
        print(
            f"stopped after the current step; its checkpoint is kept: {resume_how} from it", file=sys.stderr
        )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"weights: {weights}")
    return 0
