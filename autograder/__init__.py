"""Instructor tooling: thin, robust commands over nbgrader's own apps.

    python -m autograder release | collect | autograde | feedback | export | report | demo
"""
