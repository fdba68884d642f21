"""Flatness and out-of-distribution robustness (FlatNAS): the weight-noise ``robustness`` measure and
the ``top1_robust`` objective; the CIFAR-10-C / CIFAR-100-C corruptions, corrupted sets and OOD error
(``corruptions``, ``ood_data``, ``ood``). Loaded as a plug-in: importing it registers them."""

from robustness import corruptions, flatness, objectives, ood, ood_data, train_ood  # noqa: F401  (registrations)
