"""The sandbox: a deterministic fake of every source in sources.md, so the pipeline runs on one machine.

``world`` generates the data and its ground truth, ``registries`` the district's reference registries
(the committed dbt seeds); the HTTP server encodes the world per platform contract. No import-time work.
"""
