"""Stage 2: distil stage-1 descriptions and coefficients into a VLM with TRL SFT (see ``recipes/distill.py``)."""
