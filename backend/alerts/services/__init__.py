"""Alert services: changes a user makes (alerts.py), the check every stored batch passes
through (check.py), and the emails of firings (email.py)."""
