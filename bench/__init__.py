"""couchwatch benchmarks: `make bench` (or `python -m bench`) measures speed, scale and cost.

Every figure is a ratio to a reference measured in the same run on the same data: the seed
pipeline (compute) and the store floor (reading the same histories with the same queries).
Results go to ``bench/results/<date>.json`` and ``docs/performance.md``.
"""
