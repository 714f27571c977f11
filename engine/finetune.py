"""`python -m engine.finetune`: Fine-tuning on one person's video, kept at this path for scripts and the app (see engine.training.finetune)."""

from engine.training.finetune import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
