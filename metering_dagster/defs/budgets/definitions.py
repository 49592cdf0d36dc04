import dagster as dg

from metering_dagster.defs.budgets.assets import budget_alerts
from metering_dagster.defs.budgets.checks import budget_alerts_delivered

defs = dg.Definitions(assets=[budget_alerts], asset_checks=[budget_alerts_delivered])
