"""Pure chart functions: a DataFrame in, a ``plotly.graph_objects.Figure`` out, split by subject.

Every number drawn is computed from the inputs; inputs are never modified. An empty table gives a
figure that says so instead of raising. Colors follow the model (see ``model_colors``).
"""

from core.analytics.charts._base import (
    DEFAULT_HORIZON,
    FAILURE_COLUMNS,
    FREE_FLOOR_FALLBACK,
    OPTIMIZATION_FAILURE_COLUMNS,
    PALETTE,
    degraded_flags,
    failure_counts,
    failure_text,
    model_colors,
    with_failures,
)
from core.analytics.charts.compare import (
    accuracy_bars,
    accuracy_vs_cost,
    confusion_heatmap,
    per_label_bars,
    per_label_f1_heatmap,
)
from core.analytics.charts.optimization import (
    break_even_chart,
    break_even_headline,
    optimization_cost_split,
    optimization_failure_text,
    progress_chart,
    trade_off_detail,
)
from core.analytics.charts.search import cost_by_role_chart, lineage_chart, pareto_grid_chart, search_score_chart
from core.analytics.charts.seeds import seed_spread_chart
from core.analytics.charts.task import label_distribution

__all__ = [
    "DEFAULT_HORIZON", "FAILURE_COLUMNS", "FREE_FLOOR_FALLBACK", "OPTIMIZATION_FAILURE_COLUMNS", "PALETTE",
    "accuracy_bars", "accuracy_vs_cost", "break_even_chart", "break_even_headline", "confusion_heatmap",
    "degraded_flags", "failure_counts", "failure_text", "label_distribution", "model_colors", "optimization_cost_split",
    "optimization_failure_text", "per_label_bars", "per_label_f1_heatmap",
    "progress_chart", "trade_off_detail", "with_failures",
    "cost_by_role_chart", "lineage_chart", "pareto_grid_chart", "search_score_chart", "seed_spread_chart",
]
