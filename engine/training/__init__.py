"""Training: configuration, trainer (single process and torchrun DDP), checkpoints, losses, fine-tuning, data/."""
