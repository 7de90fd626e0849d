"""The analytics service: event schema, producers for the daemons, the worker and reports."""
