"""unitbench: side-by-side load benchmarks for unitserve, seldon-core, MLServer and ceilings."""
