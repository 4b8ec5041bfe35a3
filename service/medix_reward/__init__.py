"""medix-reward: the MediX-R1 composite reward as a batched, concurrent service."""

from medix_reward_client import __version__  # one version for the distribution: the client's

__all__ = ["__version__"]
