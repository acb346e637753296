"""Cores (the field's name for the shared feature extractor). Every core maps
``(B, C, T, H, W)`` to ``(B, D, T', H', W')`` causally; a core that strides time (``T' < T``) says
which frame each step ends at (``step_ends``), and every core says where its output cells sit on
the frame (``feature_grid``, see :mod:`neuroenc.model.geometry`)."""
