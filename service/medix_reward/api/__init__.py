"""The HTTP service: app factory, routes, admission, errors, connection limits, metrics and telemetry."""
