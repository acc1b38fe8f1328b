"""protege.data."""
