"""protege.distill."""
