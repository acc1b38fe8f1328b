"""protege.data: reading labelled text tables, tokenising and batching, and the built-in assets.

Importing this package is cheap: pandas, datasets and torch load only when a function needs them.
"""

from protege.data.assets import minilm_dir, rotten_tomatoes
from protege.data.batching import batch_indices, collate, encode, iterate_batches
from protege.data.loading import load_run_data
from protege.data.mpnet import mpnet_dir
from protege.data.names import generic_names, name_classes, parse_label_names
from protege.data.objects import describe_table
from protege.data.tables import (
    CLASSIFICATION,
    REGRESSION,
    Examples,
    LabelSpace,
    infer_label_space,
    load_examples,
    map_labels,
    read_table,
)

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "Examples",
    "LabelSpace",
    "read_table",
    "load_examples",
    "load_run_data",
    "infer_label_space",
    "map_labels",
    "parse_label_names",
    "name_classes",
    "generic_names",
    "describe_table",
    "encode",
    "batch_indices",
    "collate",
    "iterate_batches",
    "minilm_dir",
    "mpnet_dir",
    "rotten_tomatoes",
]
