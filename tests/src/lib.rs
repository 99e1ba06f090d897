//! Workspace-level tests of azure-redis-connect live in `tests/`; this library is empty.
