"""SAM tooling: the template loaded and transformed offline, and the `sam build` output read back."""
