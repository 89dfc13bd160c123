"""Service orders: each order type runs the workflow of its versioned configuration file
(:mod:`meter2cash.cis.orders.workflow`; defaults in ``workflows/``)."""
