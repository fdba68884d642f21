"""Zero-cost proxies plug-in: training-free scores of a network at initialisation.

Importing the package registers every proxy in :data:`proxies.scores.PROXIES` (name -> function
``(net, batch: ProxyBatch) -> float``) and as a measure in :data:`nas.measures.MEASURES`
(:mod:`proxies.measures`). Sign convention: **higher = better** for every proxy (the score is
meant to rise with the trained accuracy; ``jacob_cov`` carries its minus sign for that), and
``-inf`` marks a degenerate network (a singular kernel, a constant Jacobian), which ranks last.

- ``params``: #parameters in millions (a baseline).
- ``flops``: multiply-accumulates of one image at the batch's resolution, millions (a baseline;
  NAS-Bench-201's "FLOPs").
- ``synflow``: ``sum |theta * dR/dtheta|``, ``R = sum f(1)`` with every weight made positive,
  float64, BatchNorm without effect (Tanaka et al., NeurIPS 2020).
- ``snip``: ``sum |theta * dL/dtheta|`` over the conv / linear weights (Lee et al., ICLR 2019).
- ``grad_norm``: sum over conv / linear layers of ``||dL/dW||_2`` (Abdelfattah et al., ICLR 2021).
- ``fisher``: sum over channels of ``0.5 mean_n (sum_hw act * dL/dact)^2`` (Theis et al. 2018).
- ``jacob_cov``: ``-sum(log(l + k) + 1/(l + k))``, ``l`` the eigenvalues of the correlation of the
  images' input Jacobians, ``k = 1e-5`` (Mellor et al., arXiv v1 2020).
- ``naswot``: ``log|det K|``, ``K = N_A - Hamming distance`` of the images' binary ReLU codes
  (Mellor et al., ICML 2021).
- ``swap``: the number of distinct sample-wise activation patterns (Peng et al., ICLR 2024), the
  recent proxy, chosen by measurement over MeCo (see :func:`proxies.scores.swap`).

``L`` is the cross-entropy of the batch (train mode). The definitions, and where an
implementation departs from its paper, are in :mod:`proxies.scores`. :func:`score_network` scores
one network (each proxy on its own copy, seeded); :class:`ProxyScorer` scores architectures of a
search space on one fixed batch of real training images, cached by ``arch_id`` (the search loop's
entry point). ``tools/score_proxies.py`` and ``benchmarks/b15_proxies.py`` report their rank
correlation with accuracy.
"""

from proxies import measures, scorer, scores, search  # noqa: F401
from proxies.scorer import ProxyScorer, score_network
from proxies.scores import PROXIES, ProxyBatch

__all__ = ["PROXIES", "ProxyBatch", "ProxyScorer", "score_network"]
