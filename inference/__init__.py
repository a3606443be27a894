"""Inference: the multi-task model, its Triton export and the async Triton client."""
