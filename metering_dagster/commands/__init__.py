"""The commands a user runs (`metering run | demo | clock advance | explain | corrections preview | query | bench`).

Plain functions that take the settings and return the process's exit code; `cli.py` parses the arguments
and calls them. They sit above `defs/`: a command may start the Dagster job, never the other way round.
"""
