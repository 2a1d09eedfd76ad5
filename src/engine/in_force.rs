//! The faults in force, by the step that injected them, and the order they
//! are healed in: a step's own fault when its `for:` is over; every other at
//! the end of the run, the last injected first, so a fault laid on top of
//! another is lifted before the one beneath it, as an operator would undo
//! them.

pub struct InForce<T> {
    faults: Vec<(String, T)>,
}

impl<T> Default for InForce<T> {
    fn default() -> Self {
        InForce { faults: Vec::new() }
    }
}

impl<T> InForce<T> {
    pub fn injected(&mut self, step: &str, fault: T) {
        self.faults.push((step.to_string(), fault));
    }

    /// The fault `step` injected, to heal now that the step is over.
    pub fn take(&mut self, step: &str) -> Option<(String, T)> {
        let k = self.faults.iter().position(|(s, _)| s == step)?;
        Some(self.faults.remove(k))
    }

    /// The next fault to heal at the end of the run: the last one injected.
    pub fn last(&mut self) -> Option<(String, T)> {
        self.faults.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_takes_its_own_fault_and_the_rest_heal_last_injected_first() {
        let mut f = InForce::default();
        f.injected("unexport", "nfs.unexport");
        f.injected("cut", "net.block");
        f.injected("slow", "block.delay");
        assert_eq!(f.take("cut"), Some(("cut".into(), "net.block")));
        assert_eq!(f.take("cut"), None);
        let mut order = Vec::new();
        while let Some((step, _)) = f.last() {
            order.push(step);
        }
        assert_eq!(order, ["slow", "unexport"]);
    }
}
