"""Preference stage: candidate renders, a browser ranking app on SQLite, a simulated annotator, TRL preference
pairs and iterative DPO rounds (SuperFace)."""
