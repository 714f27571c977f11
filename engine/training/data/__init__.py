"""Training data: video clips, photo folders and synthetic faces, as clips of K frames of one person.

- :mod:`engine.training.data.video`: decode + detect + crop + cache videos, cut into clips (VideoClips).
- :mod:`engine.training.data.images`: folders of photos as one-frame clips (ImageStills).
- :mod:`engine.training.data.synthetic`: rendered ICT faces with ground truth (SyntheticFaces).
- :mod:`engine.training.data.bank`: a synthetic set rendered once and cached (SyntheticBank).
- :mod:`engine.training.data.clip`: the clip format, flips, face masks, collation into batches.
- :mod:`engine.training.data.mixture`: the data of one training run (TrainingData, DataConfig).
"""
