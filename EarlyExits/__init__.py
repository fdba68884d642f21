"""Early-exit networks (EDANAS and NACHOS): search spaces, exit heads, trainers, exit policies,
the ``exits`` measure and the NACHOS objective. Loaded as a plug-in: importing it registers them."""

from EarlyExits import measures, objectives, policies, spaces, train_ee, trainers  # noqa: F401  (registrations)
