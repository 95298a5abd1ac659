"""The commune head-end (docs/headend.md): store, operator actions, API, serve."""
