"""Whether the schedules and sensors start on their own: off unless METERING_AUTOMATION=on.

Opening the Dagster UI (`make dev`) must not start billing runs, so by default every schedule and sensor
loads stopped; a production deployment sets METERING_AUTOMATION=on. Either way this is only the status a
schedule or sensor has until someone turns it on or off in the UI: the instance keeps that choice.
"""

from __future__ import annotations

import dagster as dg

from metering_dagster.settings import automation_enabled


def default_schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if automation_enabled() else dg.DefaultScheduleStatus.STOPPED


def default_sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_enabled() else dg.DefaultSensorStatus.STOPPED
