"""`python -m engine.train`: Self-supervised CEST training, kept at this path for scripts and the app (see engine.training.trainer)."""

from engine.training.trainer import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
