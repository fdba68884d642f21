"""The engine of the toolkit: registries, data, cost model, training and evaluation.

Task plug-ins (``NasSearchSpace``, ``acc_predictor``, ``EarlyExits``, ``LayerSkipping``,
``robustness``) import from here; this package never imports a plug-in by name.
"""
