"""Self-supervised CEST training: one process or torchrun DDP, atomic checkpoints, exact resume.

    python -m engine.train CONFIG.yaml [--out DIR] [--resume | --overwrite]
    torchrun --nproc_per_node=N -m engine.train CONFIG.yaml

The run folder holds: checkpoint.pt (model, optimizer, step, RNG states), weights.safetensors
(the model at the last checkpoint; CestModel.load reads it), config.yaml, status.json (what the
app polls), tb/ (TensorBoard) and samples/ (reconstruction grids). A folder holding a run is
never overwritten unless asked (--overwrite), and is locked while a run is live (engine.io.runlock).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from engine.facemodel import FaceModel
from engine.io.atomic import remove_leftovers, write_text
from engine.io.runlock import RunLock, check_folder, clear_run
from engine.model.chain import CestModel
from engine.render import Renderer, shade
from engine.training.checkpoint import CHECKPOINT, WEIGHTS, load_checkpoint, save_checkpoint
from engine.training.config import (  # noqa: F401 - re-exported: the config lives in engine.training.config
    LogConfig,
    OptimConfig,
    TrainConfig,
    TrainingError,
    load_config,
    lr_at,
    merge_dicts,
    parse_overrides,
)
from engine.training.data.mixture import TrainingData
from engine.training.launch import (  # noqa: F401 - re-exported: engine.train and the tests use them here
    Dist,
    run_until_stopped,
    setup_distributed,
    stop_on_sigint,
)
from engine.training.losses import cest_losses, swap_partners
from engine.training.runlog import RunLogger

# -------------------------------------------------------------------------------- trainer


class Trainer:
    """Owns the model, optimizer, data and outputs of one run."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        init_weights: str | Path | None = None,
        data: TrainingData | None = None,
    ):
        self.config, self.out = config, Path(out_dir)
        self.dist = setup_distributed(config.device)
        self.device = torch.device(config.device)
        torch.set_num_threads(max(1, config.threads))
        torch.manual_seed(config.seed + self.dist.rank)
        self.face_model = FaceModel.load(device=self.device)
        self.renderer = Renderer(self.face_model.faces, self.face_model.uvs).to(self.device)
        self.model = self._build_model(init_weights)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), config.optim.lr, weight_decay=config.optim.weight_decay
        )
        self.net = self._wrap(self.model)
        self.data = data or self._prepare_data()
        self.step = 0

    def _build_model(self, init_weights) -> CestModel:
        if init_weights:
            model = CestModel.load(init_weights, self.config.model, self.face_model)
        else:
            model = CestModel(self.config.model, self.face_model)
        return model.to(self.device).train()

    def _prepare_data(self) -> TrainingData:
        """Rank 0 prepares (decodes, detects, renders) and caches; the other ranks then read the cache."""
        cfg = self.config

        def build() -> TrainingData:
            try:
                return TrainingData(
                    cfg.data, cfg.model.image_size, cfg.model.texture_size, cfg.seed, self.face_model
                )
            except ValueError as err:  # no usable data (a video with no face, say): one clear line
                raise TrainingError(str(err)) from err

        if self.dist.world == 1:
            return build()
        data = build() if self.dist.main else None
        dist.barrier()
        return data or build()

    def _wrap(self, model):
        if self.dist.world == 1:
            return model
        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ----------------------------------------------------------------------------- steps

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.config
        batch = self.data.batch(step, self.dist.rank, synthetic_only=step < cfg.optim.warm_start_steps)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, cfg.optim)
        params = self.net(batch["image"], batch["landmarks"])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + self.dist.rank)
        partner = swap_partners(batch["clip_id"].cpu(), gen).to(self.device)
        result = cest_losses(params, batch, self.face_model, self.renderer, cfg.losses, partner)
        self.optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        terms = {k: float(v.detach()) for k, v in result.terms.items()}
        terms["total"] = float(result.total.detach())
        return terms

    def run(
        self,
        progress_callback: Callable[[dict], None] | None = None,
        stop_event: threading.Event | None = None,
        resume: bool = False,
        overwrite: bool = False,
    ) -> Path:
        """Train to ``optim.steps``. The run folder is locked meanwhile; one that holds a run is
        refused unless ``resume`` (continue it) or ``overwrite`` (replace it) is given."""
        lock = RunLock(self.out) if self.dist.main else None
        if lock:
            lock.acquire()
        try:
            self._open_run(resume, overwrite)
            return self._loop(progress_callback, stop_event)
        finally:
            if lock:
                lock.release()

    def _open_run(self, resume: bool, overwrite: bool) -> None:
        """Check the folder, restore a resumed run, and only then write the run's config.yaml
        (a refused resume changes nothing in the folder)."""
        if self.dist.main:
            check_folder(self.out, resume, overwrite)
            if overwrite and not resume:
                clear_run(self.out)
        if resume:
            self.step = self._resume()
        if self.dist.main:
            write_text(self.out / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False))

    def _loop(self, progress_callback, stop_event) -> Path:
        cfg, main = self.config, self.dist.main
        logger = RunLogger(self.out, cfg, main, self.step, progress_callback)
        sample_batch = self.data.sample_batch() if main else None
        stopped = False
        try:
            while self.step < cfg.optim.steps:
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
                terms = self.train_step(self.step)
                self.step += 1
                logger.step(
                    self.step, terms, self.data.config.clips_per_batch * self.data.config.frames_per_clip
                )
                if main and self.step % cfg.log.samples_every == 0:
                    logger.samples(self.step, self.sample_grid(sample_batch))
                if self.step % cfg.log.checkpoint_every == 0:
                    self.checkpoint()
            if main and self.step % cfg.log.samples_every != 0:
                logger.samples(
                    self.step, self.sample_grid(sample_batch)
                )  # a short or stopped run shows one too
            self.checkpoint()  # stopped or done: Resume continues from this very step
        except BaseException as err:
            logger.finish("error" if not isinstance(err, KeyboardInterrupt) else "stopped", str(err))
            raise
        logger.finish("stopped" if stopped else "done")
        return self.out / WEIGHTS

    def _resume(self) -> int:
        path = self.out / CHECKPOINT
        if self.dist.main:
            remove_leftovers(path)  # half-written checkpoints of a killed run
        if not path.exists():
            raise TrainingError(f"nothing to resume: no {CHECKPOINT} in {self.out}")
        return load_checkpoint(path, self.model, self.optimizer)

    def checkpoint(self) -> None:
        if self.dist.main:
            save_checkpoint(self.out / CHECKPOINT, self.model, self.optimizer, self.step, self.config)
        if self.dist.world > 1:
            dist.barrier()

    @torch.no_grad()
    def sample_grid(self, batch: dict) -> np.ndarray:
        """Rows of input | reconstruction | swapped reflectance | albedo | shading | normals."""
        n = min(self.config.log.samples, batch["image"].shape[0])
        image = batch["image"][:n].to(self.device)
        self.model.eval()
        params = self.model(image, batch["landmarks"][:n].to(self.device))
        self.model.train()
        _, cam, ndc = params.geometry(self.face_model)
        size = image.shape[-1]
        out = self.renderer.render(cam, ndc, params.albedo, params.light, size)
        swapped = shade(out, params.albedo.roll(1, 0), params.light)
        over = lambda r: r.image.clamp(0, 1) * r.mask + image * (1 - r.mask)  # noqa: E731
        albedo = torch.nn.functional.interpolate(params.albedo, size=(size, size), mode="bilinear")
        cols = [
            image,
            over(out),
            over(swapped),
            albedo,
            out.shading.clamp(0, 1),
            (out.normals * 0.5 + 0.5) * out.mask,
        ]
        grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2)  # (3, n*S, 6*S)
        return (grid.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ entry points


def train(
    config: TrainConfig | str | Path,
    out_dir: str | Path,
    progress_callback=None,
    stop_event=None,
    resume: bool = False,
    init_weights: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Train a CEST model; returns the path of the weights (safetensors) written to ``out_dir``.
    A folder that holds a run is refused unless ``resume`` or ``overwrite`` (see engine.io.runlock)."""
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    main = int(os.environ.get("RANK", "0")) == 0
    with RunLock(out_dir) if main else contextlib.nullcontext():
        if main:
            check_folder(out_dir, resume, overwrite)  # before preparing the data: refuse at once
        trainer = Trainer(config, out_dir, init_weights)
        try:
            return trainer.run(progress_callback, stop_event, resume, overwrite)
        finally:
            if trainer.dist.world > 1 and dist.is_initialized():
                dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="training config (YAML), e.g. configs/default.yaml")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run the folder holds (without it such a folder is refused)",
    )
    parser.add_argument("--init", default=None, help="start from these weights (safetensors)")
    parser.add_argument("--steps", type=int, default=None, help="override optim.steps")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.conditional=false",
    )
    args = parser.parse_args(argv)

    def work(stop: threading.Event) -> Path:
        overrides = parse_overrides(args.set)
        if args.steps is not None:
            overrides = merge_dicts(overrides, {"optim": {"steps": args.steps}})
        config = load_config(args.config, overrides)
        out = args.out or str(Path("runs") / Path(args.config).stem)
        return train(
            config,
            out,
            stop_event=stop,
            resume=args.resume,
            init_weights=args.init,
            overwrite=args.overwrite,
        )

    return run_until_stopped(work, "resuming continues")


if __name__ == "__main__":
    sys.exit(main())
