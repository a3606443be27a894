"""Retraining: dataset loaders, training, evaluation, the promotion gate and its worker."""
