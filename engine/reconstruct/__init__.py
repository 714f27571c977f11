"""Reconstruction: Reconstructor (photo, several photos, video), de-lighting, detail, views (maps, params.json), edits, sequences, animation."""
