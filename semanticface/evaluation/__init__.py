"""Scoring predicted coefficients against ground truth and baselines, and writing reports."""
