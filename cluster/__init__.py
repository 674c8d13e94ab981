"""Where a sweep runs: an embedded local Ray, or an existing cluster (and, for jobs, its Jobs API)."""
