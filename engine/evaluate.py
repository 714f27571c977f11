"""`python -m engine.evaluate`: `cest eval`, kept at this path for scripts and the app (see engine.evaluation.cli)."""

from engine.evaluation.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
