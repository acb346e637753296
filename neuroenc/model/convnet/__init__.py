"""Cores (the field's name for the shared feature extractor). Every core maps
``(B, C, T, H, W)`` to ``(B, D, T, H', W')`` with a feature map for every input frame, causally."""
