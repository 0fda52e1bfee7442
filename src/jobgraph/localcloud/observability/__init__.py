"""CloudWatch, locally: request metering, service metrics, EMF, log groups and alarm evaluation; leaves out dashboards rendering and metric math."""
