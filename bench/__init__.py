"""The benchmark harness (`make bench`, `python -m bench.run`): throughput of the full worker
against a bare Faust agent and a bare aiokafka loop, latency at half load, and memory per open
cart and ticket, all on one broker and one pre-produced event log."""
