//! `cases:` rules: each names matrix variables and values that exist, so a
//! typo cannot leave a requirement or a known failure silently unapplied.

use super::super::model::Scenario;
use super::{Checker, check_kernel_range};

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    for (i, rule) in s.cases.iter().enumerate() {
        let path = format!("cases[{i}].when");
        let at = rule.when.referenced;
        if s.matrix.is_empty() {
            c.at(
                at,
                format!("cases[{i}]"),
                "`cases:` picks cases of the `matrix:`, and the file has none".into(),
                Some("put requirements and known failures of the whole file in `requires:` and `xfail:`".into()),
            );
            continue;
        }
        if rule.when.value.is_empty() {
            c.at(
                at,
                path.clone(),
                "`when:` names no matrix value, so the rule would apply to every case".into(),
                Some("for every case use the file's own `requires:` and `xfail:`".into()),
            );
        }
        for (name, value) in &rule.when.value {
            match s.matrix.get(name) {
                None => c.at(
                    at,
                    format!("{path}.{name}"),
                    format!("`{name}` is not a matrix variable"),
                    Some(format!("valid choices: {}", choices(s.matrix.keys()))),
                ),
                Some(values) if !values.contains(value) => c.at(
                    at,
                    format!("{path}.{name}"),
                    format!("`{value}` is not one of the matrix's values for `{name}`"),
                    Some(format!("valid choices: {}", choices(values.iter()))),
                ),
                Some(_) => {}
            }
        }
        if rule.requires.is_none() && rule.xfail.is_none() {
            c.at(
                at,
                format!("cases[{i}]"),
                "the rule says nothing about its cases".into(),
                Some("give it `requires:`, `xfail:` or both".into()),
            );
        }
        if let Some(range) = rule.xfail.as_ref().and_then(|x| x.kernel.as_ref()) {
            check_kernel_range(c, range, &format!("cases[{i}].xfail.kernel"));
        }
    }
}

fn choices<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
