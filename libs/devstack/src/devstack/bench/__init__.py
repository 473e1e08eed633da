"""`make bench`: load a stack for a fixed time per scenario, beside the ceilings and the
reference it is read against, and write what it cost.

Modules: cli (the command), own_stack (a stack of the bench's own when none runs), plan
(addresses, durations), selection (what this stack can run, what is skipped and why),
preparation (channels, bench data), runner (baselines, then scenario x path x
concurrency), scenarios (what is called), dataset, chat_data and summary_data (the bench
clinician's patients, chats, stored and fresh summaries), grpc_load, wrk and h2load (the
load generators), streaming and stream_runs (time to first chunk of streamed replies),
summary_jobs and extra_worker (background jobs with 1 and 2 workers), event_backlog
(waiting out the events of the bench's own writes), baselines, baseline_runs, ceilings and
echo/ (the bare grpc.aio echo, directly and through the gateway template), reference and
reference_app (the FastAPI monolith of issue 9), latency (percentiles), cpu and
cpu_groups (per-process CPU from /proc), memory, soak and soak_run (RSS from /proc, at
rest and under a long paced load), processes (a local process's command line and
environment), gateway_stats (Envoy's rate-limit counter and bucket), machine (facts about
the host), results (what a run produced), targets (issue 9's targets from a run's
numbers), report, comparison_report, memory_report, custom_report and table (terminal
tables, markdown), chart (the PNG).
"""
