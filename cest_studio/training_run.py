"""A training run as the Train tab starts it: its config file and the command line of the child
process. No Qt; the engine is imported inside the function.
"""

from __future__ import annotations

from pathlib import Path


def prepare_training_run(request: dict) -> dict:
    """Build ``app_config.yaml`` in the run folder from a base recipe and the Train tab's settings.

    request: base_config (path or None = the built-in fine-tuning recipe), out_dir, videos (list),
    init_weights (or None), steps, lr, clips_per_batch, device, resume (bool).
    Returns {"module": "engine.train", "args": [...], "config": path, "out_dir": path}: the child
    process runs ``python -m module args``.
    """
    import yaml

    from engine.io.runlock import check_folder
    from engine.training.trainer import TrainingError, load_config, merge_dicts

    out_dir = Path(request["out_dir"]).expanduser()
    config_path = out_dir / "app_config.yaml"
    check_folder(out_dir, bool(request.get("resume")))  # a live run, or a run not to be overwritten
    if request.get("resume"):
        if not config_path.exists():
            raise TrainingError(
                f"cannot resume {out_dir}: it was not started from the app (no app_config.yaml)"
            )
        return {
            "module": "engine.train",
            "args": [str(config_path), "--out", str(out_dir), "--resume"],
            "config": str(config_path),
            "out_dir": str(out_dir),
        }
    overrides: dict = {"optim": {}, "data": {}}
    if request.get("steps"):
        overrides["optim"]["steps"] = int(request["steps"])
    if request.get("lr"):
        overrides["optim"]["lr"] = float(request["lr"])
    if request.get("clips_per_batch"):
        overrides["data"]["clips_per_batch"] = int(request["clips_per_batch"])
    if request.get("device"):
        overrides["device"] = request["device"]
    videos = [str(Path(v).expanduser()) for v in request.get("videos") or []]
    for video in videos:
        if not Path(video).exists():
            raise TrainingError(f"no such video or folder: {video}")
    if videos:
        overrides["data"]["videos"] = videos
    init = request.get("init_weights")
    if init:
        from engine.model.chain import read_weights

        model_config, _ = read_weights(init)
        overrides["model"] = model_config.to_dict()
    base = request.get("base_config")
    if base:
        config = load_config(base, overrides)
    else:
        from engine.training.finetune import FINETUNE_RECIPE
        from engine.training.trainer import TrainConfig

        config = TrainConfig.from_dict(merge_dicts(FINETUNE_RECIPE, overrides))
    if not config.data.videos and not getattr(config.data, "synthetic_clips", 0):
        raise TrainingError("choose at least one video or folder of clips to train on")
    out_dir.mkdir(parents=True, exist_ok=True)
    from engine.io.atomic import write_text

    write_text(config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    args = [str(config_path), "--out", str(out_dir)]
    if init:
        args += ["--init", str(init)]
    return {"module": "engine.train", "args": args, "config": str(config_path), "out_dir": str(out_dir)}
