"""JSON log lines for log shippers: one object per record and line, with time, level, logger,
message and the traceback."""

from __future__ import annotations

import logging
import sys

import orjson

from stream.runtime.logs import JsonLines


def test_json_lines_are_one_object_per_record() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "stream.app", logging.ERROR, __file__, 1, "lost %d records", (3,), exc_info
    )
    line = JsonLines().format(record)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["level"] == "ERROR" and parsed["logger"] == "stream.app"
    assert parsed["message"] == "lost 3 records"
    assert parsed["time"].endswith("+00:00") and "ValueError: bad" in parsed["exception"]
