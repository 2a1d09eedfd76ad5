//! Typed matchers evaluated over the run's events and observations.
