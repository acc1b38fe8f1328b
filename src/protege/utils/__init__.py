"""The ground floor: helpers every other package may import and that import nothing of protege's.

- :mod:`protege.utils.io`: atomic, fsync'd file writing (bytes, text, JSON).
- :mod:`protege.utils.fmt`: the one number-formatting system of tables, model cards and reports.
- :mod:`protege.utils.device`: devices and the process group of a multi-process launch.
- :mod:`protege.utils.log`: one-line status messages from the main process.
- :mod:`protege.utils.fields`: config-field metadata and numeric validation for config dataclasses.
"""
