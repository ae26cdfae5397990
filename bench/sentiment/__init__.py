"""Sentiment benchmark: accuracy and cost of stream/voice (`python -m bench.sentiment`)."""
