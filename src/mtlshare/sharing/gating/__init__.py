"""The pieces that the mixture-of-experts mechanisms (``mmoe``, ``ple``) share:

- ``layers.py``: the softmax gate, the mixture of expert outputs, the trunk split into levels,
  and the tally of gate weights over a split's real positions;
- ``report.py``: what a run's ``"gates"`` results say (each gate's mean weight per expert on
  dev), pure maths over them (two gates' overlap, a task's weight on shared experts), their
  summary across seeds and its Markdown table;
- ``plots.py``: the gate weights as heat maps (a run's ``gates.png``, a comparison's).

Nothing here names a mechanism: a comparison finds gated rows by their ``"gates"`` results.
"""

from mtlshare.sharing.gating.layers import Gate, GateTally, level_bounds, mix, real_positions

__all__ = ["Gate", "GateTally", "level_bounds", "mix", "real_positions"]
