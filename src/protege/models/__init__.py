"""Teachers and students: loading, architecture adapters, student construction."""

from protege.models.adapters import block_list, hidden_size, num_heads, num_layers, replace_blocks
from protege.models.checks import check_max_length, check_tokenizer, check_weight_files, position_limit
from protege.models.ensemble import Ensemble, combine_logits, load_ensemble
from protege.models.loading import load_backbone_as_classifier, load_classifier, load_config, load_tokenizer, problem_type_of
from protege.models.students import check_same_vocabulary, keep_layers, parse_layer_spec, pretrained_student, smaller_student

__all__ = [
    "block_list", "hidden_size", "num_heads", "num_layers", "replace_blocks",
    "check_max_length", "check_tokenizer", "check_weight_files", "position_limit", "Ensemble", "combine_logits", "load_ensemble",
    "load_backbone_as_classifier", "load_classifier", "load_config", "load_tokenizer", "problem_type_of",
    "check_same_vocabulary", "keep_layers", "parse_layer_spec", "pretrained_student", "smaller_student",
]
