"""vid-sme: video membership inference with the Vid-SME attack and its baselines.

Score convention everywhere in this package: a HIGHER score means MORE LIKELY A MEMBER.
"""

__version__ = "0.1.0"
