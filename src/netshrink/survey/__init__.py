"""``netshrink survey``: every method on the same data, measured side by side.

Methods contribute rows by registering :class:`SurveyEntry` objects; importing this
package registers the built-in entries.
"""

from netshrink.survey import (  # noqa: F401  (registers the entries)
    architectures,
    binary,
    deep_compression,
    dense_sparse_dense,
    distillation,
    peers,
)
from netshrink.survey.context import SurveyConfig, SurveyContext
from netshrink.survey.registry import (
    Figure,
    Measured,
    SurveyEntry,
    list_entries,
    register_entry,
)
from netshrink.survey.report import render_rows, render_table1, write_report
from netshrink.survey.survey import SurveyResult, SurveyRow, run_survey

__all__ = [
    "Figure",
    "Measured",
    "SurveyConfig",
    "SurveyContext",
    "SurveyEntry",
    "SurveyResult",
    "SurveyRow",
    "list_entries",
    "register_entry",
    "render_rows",
    "render_table1",
    "run_survey",
    "write_report",
]
