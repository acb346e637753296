"""Convnets: the shared feature extractor (neuralpredictors calls this role the core; neuroenc uses one
name for it, convnet, in config, code and docs). Every convnet maps
``(B, C, T, H, W)`` to ``(B, D, T', H', W')`` causally. ``T' = T`` unless the convnet strides time:
its ``temporal_stride`` says by how much (1: every frame keeps its own output step), and
``step_ends`` which frame each step ends at. Every convnet says where its output cells sit on the
frame (``feature_grid``, see :mod:`neuroenc.model.geometry`)."""
