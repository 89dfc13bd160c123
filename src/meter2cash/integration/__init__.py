"""Integration: input/output formats, the outbox and message bus, webhooks, audit."""
