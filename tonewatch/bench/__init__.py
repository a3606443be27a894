"""Benchmarks behind `tonewatch bench`: JSON figures side by side with their baselines."""
