"""Field work orders: tamper inspections, meter faults, manual disconnections; their lifecycle
(open → assigned → in progress → completed | cancelled) and the messages to and from the
work-force management system (WFM)."""
