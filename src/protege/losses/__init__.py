"""protege.losses."""
