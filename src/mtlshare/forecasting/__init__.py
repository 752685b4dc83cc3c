"""Forecasting baselines to compare multi-task forecasters against: seasonal naive and Prophet."""
