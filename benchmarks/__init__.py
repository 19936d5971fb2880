"""Measured comparisons (ratios side by side in one run), not timed tests."""
