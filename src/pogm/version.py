"""The version of pogm (recorded in every run's config.yaml)."""

__version__ = "0.1.0"
