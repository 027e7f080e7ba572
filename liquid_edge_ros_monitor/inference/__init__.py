"""liquid_inference: a liquid-network controller on sensor topics, traced with OpenTelemetry."""
