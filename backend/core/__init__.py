"""Plain helpers every layer shares: the Redis client factory, timestamps, metric recording."""
