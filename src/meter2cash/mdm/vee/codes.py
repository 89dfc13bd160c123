"""The stable dotted codes of VEE findings, one per rule (documented in ``docs/vee.md``).

Rule functions, the compiled kernels, the work queue and the reports all name a finding by these
codes; a stored :class:`~meter2cash.mdm.models.VeeFinding` keeps its code for good.
"""

# the value rules (:mod:`.rules.basic`)
MISSING_INTERVAL = "vee.missing_interval"
NEGATIVE_CONSUMPTION = "vee.negative_consumption"
INTERVAL_SPIKE = "vee.interval_spike"
STUCK_REGISTER = "vee.stuck_register"
ZERO_RUN = "vee.zero_run"
# registers (:mod:`.rules.registers`)
REGISTER_DECREASE = "vee.register_decrease"
REGISTER_ROLLOVER = "vee.register_rollover"
SUM_CHECK = "vee.sum_check"
TOU_SUM_CHECK = "vee.tou_sum_check"
# the channel's own history (:mod:`.rules.history`)
HIGH_USAGE = "vee.high_usage"
LOW_USAGE = "vee.low_usage"
DYNAMIC_COMPARISON = "vee.dynamic_comparison"
PROLONGED_ESTIMATION = "vee.prolonged_estimation"
# channel metadata and installation (:mod:`.rules.metadata`)
INTERVAL_SIZE = "vee.interval_size"
UNIT_OF_MEASURE = "vee.unit_of_measure"
MULTIPLIER = "vee.multiplier"
INACTIVE_MEASUREMENT = "vee.inactive_measurement"
# receipts of a day (:mod:`.rules.receipts`)
DUPLICATE_IMD = "vee.duplicate_imd"
ESTIMATE_REPLACED = "vee.estimate_replaced"
EDIT_KEPT = "vee.edit_kept"
