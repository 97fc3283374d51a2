"""Training: config, the fit loop, events, jobs, run folders, devices."""
