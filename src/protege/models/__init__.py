"""protege.models."""
