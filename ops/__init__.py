"""Operations tooling: running, measuring and watching the pipeline
(demo, benchmarks, alerts, scheduler harness)."""
