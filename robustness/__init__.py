"""Flatness and out-of-distribution robustness (FlatNAS): the weight-noise ``robustness`` measure and
the ``top1_robust`` objective. Loaded as a plug-in: importing it registers them."""

from robustness import flatness, objectives  # noqa: F401  (registrations)
