"""Events: the transactional outbox (:mod:`.outbox`) and its tables (:mod:`.models`). A change and
the events it raises commit together; each consumer handles a message once. Services emit; the
in-process dispatcher and the NATS relay (:mod:`meter2cash.integration.nats_bus`) deliver."""
