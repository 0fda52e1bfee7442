"""Adapters implementing the ports: AWS services and their local twins."""
