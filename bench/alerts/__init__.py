"""Change alerts, simulated: false alarms on stationary traffic and delays on injected drops
(`python -m bench.alerts`)."""
