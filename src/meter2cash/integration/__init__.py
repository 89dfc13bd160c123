"""Integration with other systems: reading formats, master-data bundles loaded into the CIS and
the MDM, the NATS message bus (event relay and ingest workers)."""
