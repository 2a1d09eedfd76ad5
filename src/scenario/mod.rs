//! The scenario model, YAML loading and validation with file:line:col errors.
