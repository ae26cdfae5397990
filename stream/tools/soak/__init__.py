"""`cxkpi soak`: does a worker's memory stay flat under a steady load?

One worker runs in its own process (so its resident memory is its own) against the embedded
broker and redis-server, or against --broker/--redis-url. This process sends it generated events
at a steady rate, with event times = the wall clock, from a thread outside the worker. Windows
and timeouts are short by default, so the largest window fills, and the first carts and tickets
are forgotten, within minutes. From then on the state stops growing, and the process should too.

Every --sample-every the worker's RSS (/proc/PID/status) and its outcome counts (/kpis) are
printed; its log is watched for errors. The run fails when RSS grew after the warm-up by more
than --max-growth, on any error line in the worker's log, on a dead letter, or when sent events
are still unprocessed after the load (within --drain-timeout). Ctrl-C stops everything and still
prints the summary.

`options.py` holds the command line, `measure.py` the load and what is read of the worker,
`run.py` the run itself (start, measure, always stop), `report.py` the summary and the verdict.
"""
