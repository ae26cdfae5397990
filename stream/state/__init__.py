"""KPI state per source partition, and its crash-consistent persistence."""
