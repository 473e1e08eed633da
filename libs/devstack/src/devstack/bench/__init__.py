"""`make bench`: load a running stack for a fixed time per scenario, and write what it cost.

Modules: cli (the command), runner (scenario x path x concurrency), scenarios (what is
called), dataset (the bench clinician and its patients), grpc_load and wrk (the two load
generators), latency (percentiles), cpu (per-process CPU from /proc), gateway_stats
(Envoy's rate-limit counter), machine (facts about the host), report (table, markdown).
"""
