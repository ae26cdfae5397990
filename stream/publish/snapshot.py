"""The merged KPI snapshot (docs/snapshot.md), by the names it had as one module.

It is now `entries.py` (a partition's entry and its Redis codec), `merge.py` (entries summed,
segments folded) and `document.py` (the document, and the KPIs rendered by their kinds,
stream/kpis/kinds/). The package imports from those; these names remain for the tests that
still import them from here (tests/unit/kpis/test_catalog.py, tests/unit/publish/
test_snapshot.py), and this module can go once those import from the new modules.
"""

from stream.kpis.kinds import nps_margin_of_error
from stream.publish.document import Shape, render
from stream.publish.entries import partition_entry
from stream.publish.merge import merge

__all__ = ["Shape", "merge", "nps_margin_of_error", "partition_entry", "render"]
