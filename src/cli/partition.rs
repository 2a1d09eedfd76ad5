//! `--partition K/N`: one CI job's share of the scenario cases, so N jobs
//! (a CI matrix, a Kubernetes Indexed Job) run the suite between them with
//! no scheduler of ours. Cases are dealt round-robin in load order (files
//! sorted, matrix cases in file order), as nextest's `count:K/N` does: the
//! same on every machine, and the long scenarios of one file spread out.

/// The K-th (1-based) of N shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    index: usize,
    count: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Partition {
    /// This share's items, in their order.
    pub fn select<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index - 1)
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_dealt_round_robin_and_cover_every_case_once() {
        let p = |s: &str| s.parse::<Partition>().unwrap();
        let cases: Vec<u32> = (0..10).collect();
        assert_eq!(p("1/3").select(cases.clone()), [0, 3, 6, 9]);
        assert_eq!(p("2/3").select(cases.clone()), [1, 4, 7]);
        assert_eq!(p("3/3").select(cases.clone()), [2, 5, 8]);
        let mut all: Vec<u32> = (1..=4)
            .flat_map(|k| p(&format!("{k}/4")).select(cases.clone()))
            .collect();
        all.sort();
        assert_eq!(all, cases);
        assert_eq!(p("1/1").select(cases.clone()), cases);
    }

    #[test]
    fn only_k_of_n_with_k_in_range_is_a_partition() {
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
        assert_eq!("2/5".parse::<Partition>().unwrap().to_string(), "2/5");
    }
}
