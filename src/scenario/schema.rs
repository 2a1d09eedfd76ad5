//! The scenario format as JSON Schema (`stackquake schema`), generated from
//! the typed model so that editors show the model's own doc comments.
//!
//! The schema describes a file after `${name}` substitution: vars are
//! replaced in the text before the YAML is parsed, so a `${…}` where the
//! model wants a number, a duration or a choice is only checkable once its
//! value is known (`stackquake validate` does that).

use super::model::Scenario;
use super::quantity::{ByteSize, Duration};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// The units humantime accepts (humantime 2.4, `Unit::from_str`), longest
/// spelling first so a backtracking regex engine tries `ms` before `m`.
const DURATION_UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|\
minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|\
years|year|yrs|yr|y";

/// A suffix-free count of bytes, or digits with one binary suffix; a
/// trailing `i`/`B` run is ignored (`64K`, `64KiB`, `64KB`), as
/// `ByteSize::from_str` does.
const SIZE_PATTERN: &str = r"^\s*[0-9]+([KkMGT])?[iB]*\s*$";

fn duration_pattern() -> String {
    format!(r"^\s*([0-9]+(\.[0-9]+)?\s*({DURATION_UNITS})\s*)+$")
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // YAML gives `3` as an integer and Duration only takes a string, so
        // a bare number is rightly refused: the unit is mandatory.
        json_schema!({
            "type": "string",
            "pattern": duration_pattern(),
            "description": "A span of time with a unit: `250ms`, `3s`, `2m`, `1h 30m`.",
            "examples": ["250ms", "3s", "2m"],
        })
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: a plain number, or digits with a binary suffix (`64K`, `512M`, `1G`, `64MiB`).",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": SIZE_PATTERN },
            ],
            "examples": [4096, "64K", "512M"],
        })
    }
}

/// The schema `stackquake schema` prints. Draft 7, because that is the
/// draft editors' YAML and JSON language servers support everywhere.
pub fn scenario_schema() -> Schema {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Scenario>();
    schema.insert("title".into(), "stackquake scenario".into());
    schema.insert(
        "description".into(),
        "A stackquake scenario file (schema_version 1), as it reads after `${name}` \
         substitution from `vars:`, `matrix:` and `--var`. References (hosts, steps, \
         workloads, images…) and cross-field rules are checked by `stackquake validate`, \
         not by this schema."
            .into(),
    );
    schema
}

/// `scenario_schema()` as the command prints it.
pub fn scenario_schema_json() -> String {
    serde_json::to_string_pretty(&scenario_schema()).expect("a schema is plain JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::{Expectation, Fault};
    use serde_json::{Value, json};

    /// serde's own list of an enum's variants, from its error for an unknown one.
    fn serde_variants<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let Err(e) = serde_saphyr::from_str::<T>("no.such.variant: {}\n") else {
            panic!("an unknown variant deserialized");
        };
        let text = e.to_string();
        let list = text
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("no variant list in: {text}"));
        let list = list.lines().next().unwrap();
        list.split(", ")
            .map(|v| v.trim_matches(['`', ' ']).to_string())
            .collect()
    }

    /// The smallest instance a schema node admits: required fields only.
    fn sample(node: &Value, defs: &Value) -> Value {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            return match r.rsplit('/').next().unwrap() {
                "Duration" => json!("1s"),
                "ByteSize" => json!(4096),
                name => sample(&defs[name], defs),
            };
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(first) = node.get(key).and_then(|a| a.get(0)) {
                return sample(first, defs);
            }
        }
        if let Some(c) = node.get("const") {
            return c.clone();
        }
        if let Some(e) = node.get("enum") {
            return e[0].clone();
        }
        let ty = match &node["type"] {
            Value::Array(types) => types[0].as_str(),
            t => t.as_str(),
        };
        match ty {
            Some("object") => {
                let mut obj = serde_json::Map::new();
                for name in node["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    obj.insert(name.into(), sample(&node["properties"][name], defs));
                }
                Value::Object(obj)
            }
            Some("array") => {
                let n = node["minItems"].as_u64().unwrap_or(1);
                Value::Array((0..n).map(|_| sample(&node["items"], defs)).collect())
            }
            Some("string") => json!("x"),
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            other => panic!("no sample for type {other:?} in {node}"),
        }
    }

    /// For an externally tagged enum: serde's variant names equal the
    /// schema's, and each schema variant's minimal instance deserializes
    /// to the variant of that name.
    fn check_variants<T: serde::de::DeserializeOwned>(def: &str, name_of: fn(&T) -> &'static str) {
        let schema = serde_json::to_value(scenario_schema()).unwrap();
        let defs = &schema["definitions"];
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut in_schema = Vec::new();
        for variant in defs[def]["oneOf"].as_array().unwrap() {
            let name = variant["required"][0].as_str().unwrap().to_string();
            let instance = sample(variant, defs);
            let parsed: T = serde_saphyr::from_str(&instance.to_string())
                .unwrap_or_else(|e| panic!("{def} sample {instance} does not load: {e}"));
            assert_eq!(name_of(&parsed), name, "{instance}");
            // The same instance, inside a scenario, passes the schema.
            let doc = match def {
                "Fault" => json!({"schema_version": 1, "id": "x", "title": "t",
                                  "steps": [{"id": "s", "fault": instance}]}),
                _ => json!({"schema_version": 1, "id": "x", "title": "t",
                            "steps": [], "expect": [instance]}),
            };
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{doc}: {errors:?}");
            in_schema.push(name);
        }
        let mut from_serde = serde_variants::<T>();
        from_serde.sort();
        in_schema.sort();
        assert_eq!(from_serde, in_schema, "{def} variants: serde vs schema");
    }

    #[test]
    fn every_fault_kind_is_in_the_schema() {
        check_variants::<Fault>("Fault", Fault::kind);
    }

    #[test]
    fn every_matcher_is_in_the_schema() {
        check_variants::<Expectation>("Expectation", Expectation::name);
    }

    #[test]
    fn quantity_patterns_follow_the_parsers() {
        let duration = regex::Regex::new(&duration_pattern()).unwrap();
        for ok in ["250ms", "3s", "2m", "1h 30m", "1.5s", "10 seconds"] {
            assert!(duration.is_match(ok), "{ok}");
            assert!(ok.parse::<Duration>().is_ok(), "{ok}");
        }
        for bad in ["soon", "3", "3 parsecs", ""] {
            assert!(!duration.is_match(bad), "{bad}");
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        let size = regex::Regex::new(SIZE_PATTERN).unwrap();
        for ok in ["4096", "64K", "64KiB", "512M", "1G", "2T"] {
            assert!(size.is_match(ok), "{ok}");
            assert!(ok.parse::<ByteSize>().is_ok(), "{ok}");
        }
        for bad in ["512Q", "M", "64 K", "1.5G"] {
            assert!(!size.is_match(bad), "{bad}");
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }
}
