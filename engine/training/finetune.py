"""Adapt trained CEST weights to one person's video: a short self-supervised run on that video.

    python -m engine.finetune VIDEO.mp4 --from resources/weights/cest_default.safetensors --out my_model/

The result (``my_model/weights.safetensors``) loads with CestModel.load and ``cest reconstruct --weights``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.model.chain import read_weights
from engine.resources import resources_root
from engine.training.launch import run_until_stopped
from engine.training.trainer import TrainConfig, TrainingError, load_config, merge_dicts, train

RECIPE_FILE = "recipes/finetune.yaml"  # in resources/: shipped with the app, the one copy of the recipe


def builtin_recipe() -> dict:
    """The fine-tuning recipe (resources/recipes/finetune.yaml) as a plain dict."""
    import yaml

    return yaml.safe_load((resources_root() / RECIPE_FILE).read_text())


FINETUNE_RECIPE = builtin_recipe()


def finetune_config(
    video: str | Path,
    from_weights: str | Path | None,
    steps: int | None = None,
    config: str | Path | None = None,
) -> TrainConfig:
    """The fine-tuning recipe for ``video``, with the model config of ``from_weights``."""
    overrides: dict = {"data": {"videos": [str(video)]}}
    if steps is not None:
        overrides["optim"] = {"steps": steps}
    if from_weights:
        model_config, _ = read_weights(from_weights)
        overrides["model"] = model_config.to_dict()
    if config:
        return load_config(config, overrides)
    return TrainConfig.from_dict(merge_dicts(FINETUNE_RECIPE, overrides))


def finetune(
    video: str | Path,
    from_weights: str | Path | None,
    out_dir: str | Path,
    steps: int | None = None,
    config: str | Path | None = None,
    progress_callback=None,
    stop_event=None,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Fine-tune ``from_weights`` (default: the shipped weights) on one video -> the new weights' path."""
    if from_weights is None:
        from engine.reconstruct.reconstructor import default_weights

        from_weights = default_weights()
        if from_weights is None:
            raise TrainingError("no weights to start from: pass --from WEIGHTS")
    if not Path(video).is_file():
        raise TrainingError(f"no video at {video}")
    cfg = finetune_config(video, from_weights, steps, config)
    return train(
        cfg,
        out_dir,
        progress_callback,
        stop_event,
        resume=resume,
        init_weights=None if resume else from_weights,
        overwrite=overwrite,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("video", help="a video of one person")
    parser.add_argument(
        "--from", dest="weights", default=None, help="weights to start from (default: shipped)"
    )
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 300)")
    parser.add_argument(
        "--config", default=None, help="a fine-tuning recipe (YAML) instead of the built-in one"
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace the run --out holds")
    args = parser.parse_args(argv)

    def work(stop) -> Path:
        return finetune(
            args.video,
            args.weights,
            args.out,
            args.steps,
            args.config,
            stop_event=stop,
            resume=args.resume,
            overwrite=args.overwrite,
        )

    return run_until_stopped(work, "rerun with --resume to continue")


if __name__ == "__main__":
    sys.exit(main())
