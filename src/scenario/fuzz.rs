//! The property the parser fuzzers check, shared by the cargo-fuzz target and
//! the seeded test that runs on stable.

/// Loads `text`; panics if the loader panics, if a rejection does not name
/// `fuzz.yaml:<line>:<column>`, or if an accepted scenario's plan is not
/// well formed (lowering panics on anything validation let through wrongly).
pub fn load_and_plan(text: &str) {
    match super::load_str(text, "fuzz.yaml") {
        Ok(plan) => {
            assert!(!plan.steps.is_empty());
            for (i, st) in plan.steps.iter().enumerate() {
                assert!(
                    st.after.is_none_or(|a| a < i),
                    "{} waits for a later step",
                    st.id
                );
                assert!(
                    st.group.is_none_or(|g| g < i),
                    "{} precedes its group",
                    st.id
                );
            }
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
