"""protege.evaluate."""
