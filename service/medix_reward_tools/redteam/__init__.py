"""`medix-reward redteam`: an attack search against the reward (grammar, transforms, search, runner)."""
