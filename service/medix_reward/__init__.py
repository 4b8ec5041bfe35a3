"""medix-reward: the MediX-R1 composite reward as a batched, concurrent service."""

__version__ = "0.1.0"
