"""Evaluation: one module per benchmark (synthetic, 300-W landmarks, AFLW2000-3D), shared metrics, the report, `cest eval`."""
