"""Benchmarks: one module per public protocol (AFLW2000-3D, 300-W landmark figures)."""
