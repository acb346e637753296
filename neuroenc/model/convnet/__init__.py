"""Cores (the field's name for the shared feature extractor). Every core maps
``(B, C, T, H, W)`` to ``(B, D, T', H', W')`` causally. ``T' = T`` unless the core strides time:
its ``temporal_stride`` says by how much (1: every frame keeps its own output step), and
``step_ends`` which frame each step ends at. Every core says where its output cells sit on the
frame (``feature_grid``, see :mod:`neuroenc.model.geometry`)."""
