"""Surrogate accuracy predictors (rbf, gp, carts, mlp, Adaptive Switching): the msunas issue fills this."""
