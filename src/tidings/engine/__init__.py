"""The sending engine: audience freeze, packages and leases, quota and
reputation guards, the global throttle, the scheduler and the worker loop."""
