"""Input-dependent layer skipping: the gated MobileNetV3 space, its gates, the gate trainer, the
``gates`` measure and ``train.py layer_skipping``. Loaded as a plug-in: importing it registers them."""

from LayerSkipping import measures, spaces, train_ls, trainer  # noqa: F401  (registrations)
