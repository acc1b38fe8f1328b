"""``python -m protege`` (also what ``accelerate launch -m protege`` runs)."""

import sys

from protege.cli.main import main

sys.exit(main())
