"""Defenses against extraction, each measured against the attack (Krishna et al. 2020, section 6).

- :mod:`.detector`: a membership classifier telling genuine inputs from extraction queries;
- :mod:`.hardening`: answering with less (argmax only, rounded probabilities, top-k);
- :mod:`.watermark`: answering a keyed fraction wrong, and testing a suspect model for it.
"""

__all__ = ["detector", "hardening", "watermark"]
