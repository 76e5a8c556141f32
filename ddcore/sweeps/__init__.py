"""Sweeps: a grid of ordinary runs from a TOML spec, run by the local job queue or by Ray.

`spec` (the schema: parse, validate, expand into cells), `store` (cells on disk: the tag, states,
resume, cancel, the metrics a table reads), `backends` (one interface: local, ray), `results`
(the long table, the aggregate over seeds), `cli` (`python -m ddcore sweep ...`).
"""
