"""Research on VEE methods with real load profiles, outside the runtime services."""
