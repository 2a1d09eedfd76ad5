//! The scenario model, YAML loading and validation with file:line:col errors.
//!
//! All YAML access lives here (`load`); the rest of the crate sees only the
//! typed, validated [`Scenario`].

pub mod fuzz;
mod load;
mod matchers;
mod model;
mod network;
mod nfs_faults;
mod quantity;
mod recover;
mod schema;
mod steps;
mod validate;

pub use load::{Case, LoadError, expand_cases, load_cases, load_file, load_str, substitute};
pub use model::*;
pub use nfs_faults::NfsCallMatch;
pub use quantity::{ByteSize, Duration};
pub use schema::{scenario_schema, scenario_schema_json};
pub use validate::{
    Problem, Problems, errno_by_name, errno_name, flatten_steps, kernel_version, parse_cidr,
};
