//! The scenario model, YAML loading and validation with file:line:col errors.
//!
//! All YAML access lives here (`load`): the serde model and its spans stay
//! inside this module; what leaves it is a validated [`crate::plan::Plan`].

pub mod fuzz;
mod history;
mod load;
mod lower;
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
pub use schema::{scenario_schema, scenario_schema_json};
pub use validate::{Problem, Problems};
