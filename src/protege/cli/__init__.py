"""protege.cli."""
