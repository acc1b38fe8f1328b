"""Objectives: what a student learns from a teacher, one per ``--objective``, found in one table.

See :mod:`protege.objectives.registry` for the contract every objective implements,
:mod:`protege.objectives.configs` for their options, :mod:`protege.objectives.layers` for the
layer plumbing they share and :mod:`protege.objectives.cache` for the teacher-output cache.
"""
