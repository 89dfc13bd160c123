"""The VEE validation rules, one module per kind of rule; each depends only on :mod:`..types` and
:mod:`..codes`.

- :mod:`.basic`: rules on the values alone (missing interval, negative consumption, spike, stuck
  register, zero run);
- :mod:`.registers`: register increase and rollover, sum check, TOU sums; outage and installation
  windows as interval masks;
- :mod:`.history`: against the channel's own history (high/low usage, dynamic comparison,
  prolonged estimation);
- :mod:`.metadata`: interval size, unit of measure, multiplier, inactive measurement;
- :mod:`.receipts`: duplicate IMD and final measurement replacement;
- :mod:`.select`: which of the rules that need context run over a window.
"""
