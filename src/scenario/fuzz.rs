//! The property the parser fuzzers check, shared by the cargo-fuzz target and
//! the seeded test that runs on stable.

/// Loads `text`; panics if the loader panics, if a rejection does not name
/// `fuzz.yaml:<line>:<column>`, or if an accepted scenario cannot be planned.
pub fn load_and_plan(text: &str) {
    match super::load_str(text, "fuzz.yaml") {
        Ok(s) => {
            let t = crate::engine::Timeline::resolve(&s);
            assert_eq!(t.steps.len(), super::flatten_steps(&s.steps).len());
        }
        Err(super::LoadError::Read { .. }) => unreachable!("no file is read"),
        Err(e) => {
            let msg = e.to_string();
            let located = msg.match_indices("fuzz.yaml:").any(|(i, m)| {
                let rest = &msg[i + m.len()..];
                let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).count();
                let line = digits(rest);
                line > 0 && rest[line..].starts_with(':') && digits(&rest[line + 1..]) > 0
            });
            assert!(located, "rejection without file:line:column:\n{msg}");
        }
    }
}
