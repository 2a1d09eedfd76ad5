//! Seeded mutation fuzzing of the scenario parser and validator on stable
//! (fuzz/fuzz_targets/scenario_parse.rs is the coverage-guided version):
//! valid and invalid scenarios, cut, spliced and garbled, never panic the
//! loader, and every rejection points at a line and column.

use std::path::Path;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for dir in ["scenarios", "tests/scenarios/bad"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                texts.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    texts
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    "- ",
    "  ",
    "\n",
    "'",
    "\"",
    "after: steady",
    "parallel: []",
    "offset: 1s",
    "timeout: 0s",
    "for: 1s",
    "wait: 99999999999h",
    "exec: { host: client, command: [true] }",
    "&a",
    "*a",
    "!!str",
    "~",
    "null",
    "-1",
    "1e999",
    "\t",
    "\u{feff}",
    "é",
];

fn mutate(rng: &mut Rng, text: &str, pool: &[String]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let n = lines.len().max(1);
        match rng.below(7) {
            0 if !lines.is_empty() => {
                lines.remove(rng.below(n));
            }
            1 if !lines.is_empty() => {
                let l = lines[rng.below(n)].clone();
                lines.insert(rng.below(n), l);
            }
            2 if lines.len() > 1 => {
                let (a, b) = (rng.below(n), rng.below(n));
                lines.swap(a, b);
            }
            3 if !lines.is_empty() => {
                let i = rng.below(n);
                let mut chars: Vec<char> = lines[i].chars().collect();
                let at = rng.below(chars.len() + 1);
                let token = TOKENS[rng.below(TOKENS.len())];
                for (k, c) in token.chars().enumerate() {
                    chars.insert((at + k).min(chars.len()), c);
                }
                lines[i] = chars.into_iter().collect();
            }
            4 if !lines.is_empty() => {
                let i = rng.below(n);
                let cut = rng.below(lines[i].chars().count() + 1);
                lines[i] = lines[i].chars().take(cut).collect();
            }
            5 => {
                // Splice in a line from another scenario.
                let other = &pool[rng.below(pool.len())];
                let other_lines: Vec<&str> = other.lines().collect();
                if !other_lines.is_empty() {
                    lines.insert(
                        rng.below(n),
                        other_lines[rng.below(other_lines.len())].to_string(),
                    );
                }
            }
            _ => {
                let i = rng.below(n);
                if let Some(l) = lines.get_mut(i) {
                    *l = l.replace(':', "");
                }
            }
        }
    }
    lines.join("\n")
}

/// Every input that ever failed the property, here or under cargo-fuzz
/// (fuzz/fuzz_targets/scenario_parse.rs), so a regression shows up on
/// stable without the fuzzer.
const FAILED_BEFORE: &[&str] = &[
    // cargo-fuzz's very first input: "unexpected end of input at line 1,
    // column 1" named no file.
    "",
    "\n",
    "# only a comment\n",
    "---\n",
    "\u{feff}",
];

#[test]
fn inputs_that_failed_before_are_located() {
    for text in FAILED_BEFORE {
        let outcome = std::panic::catch_unwind(|| stackquake::scenario::fuzz::load_and_plan(text));
        assert!(outcome.is_ok(), "failed again on {text:?}");
    }
}

#[test]
fn mutated_scenarios_never_panic_and_every_rejection_is_located() {
    let pool = seeds();
    assert!(pool.len() > 40);
    let mut rng = Rng(0x5eed_0000_5ca1_ab1e);
    for text in FAILED_BEFORE {
        stackquake::scenario::fuzz::load_and_plan(text);
    }
    let mut accepted = 0;
    for round in 0..3000 {
        let seed = &pool[rng.below(pool.len())];
        let text = mutate(&mut rng, seed, &pool);
        let outcome = std::panic::catch_unwind(|| stackquake::scenario::fuzz::load_and_plan(&text));
        assert!(outcome.is_ok(), "round {round} panicked on:\n{text}");
        accepted += usize::from(stackquake::scenario::load_str(&text, "f.yaml").is_ok());
    }
    // The mutations must not be so destructive that nothing parses.
    assert!(accepted > 5, "only {accepted} mutants were valid");
}
