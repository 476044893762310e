"""Every scheduled job, imported once so that each registers itself."""
