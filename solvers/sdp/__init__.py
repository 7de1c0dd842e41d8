"""Semidefinite programs for clustering: Peng–Wei K-means SDP, LA-SDP and iLA-SDP.

``exact`` solves them with cvxpy (the reference); ``lowrank`` with nonnegative
Burer–Monteiro factors; ``signed`` with signed factors and ``Z >= 0`` as a constraint
(the Peng–Wei escalation), certified by ``certificate``; ``peng_wei`` and ``likelihood``
build the two problems on top.
"""
