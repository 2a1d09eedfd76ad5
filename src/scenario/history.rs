//! The history checkers' event references as a scenario writes them: a
//! moment of the journal named by what it belongs to (a workload's op, a
//! step's edge, a fault's). One flat map, checked by
//! validate/history.rs: exactly one of `workload` (with `op`), `step` (with
//! `at: begin|end`) or `fault` (with `at: injected|healed`).

use super::model::Ref;
use crate::plan::{Edge, OpEvent};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    /// A workload, with `op`: the first of its ops that did that.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub workload: Option<Ref>,
    /// With `workload`: `acquired` (a flock call returned with the lock),
    /// `released` (an unlock call began), `succeeded` or `failed` (an op ended so).
    #[serde(default)]
    #[schemars(with = "Option<OpEvent>")]
    pub op: Option<Spanned<OpEvent>>,
    /// A step, with `at: begin|end`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub step: Option<Ref>,
    /// A fault step, with `at: injected|healed`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub fault: Option<Ref>,
    #[serde(default)]
    #[schemars(with = "Option<Edge>")]
    pub at: Option<Spanned<Edge>>,
}
