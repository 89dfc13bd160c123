"""VEE compiled with Numba: the whole rule set, estimation and quality flags in one pass per channel.

:mod:`.kernels` holds the ``@njit`` kernels; :mod:`.fused` turns a rule set into their parameters and
their run arrays into findings. Only :mod:`meter2cash.mdm.vee.evaluate` (rules) and
:mod:`meter2cash.mdm.vee.estimation` (estimation, quality flags) call them, and load Numba on first use.
"""
