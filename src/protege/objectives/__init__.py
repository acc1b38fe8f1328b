"""Objectives: what a student learns from a teacher, one per ``--objective``, found in one table.

See :mod:`protege.objectives.registry` for the contract every objective implements.
"""
