//! The status a task publishes on `progress/<agent-id>/task/<task-id>`:
//! `{"status":"running","progress":54}`. Progress is weighted: each step
//! has a weight (1 by default, 0 for the schema checks, changed with
//! `set-weight`), and the overall value is the weighted progress of the
//! steps done plus the current one, over 100 times the total weight, in
//! whole percent rounded down: steps of weight 1 and the 3rd of 5 at 73
//! give (100 + 100 + 73) * 100 / 500 = 54.

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const COMPLETED: &str = "completed";
pub const ABORTED: &str = "aborted";
pub const VALIDATION_FAILED: &str = "validation-failed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processor {
    pub status: &'static str,
    pub progress: i64,
    /// Step names and weights, in run order.
    pub steps: Vec<(String, i64)>,
}

impl Processor {
    pub fn new(steps: Vec<(String, i64)>) -> Processor {
        Processor { status: PENDING, progress: 0, steps }
    }

    /// A builtin action: one step of weight 1 named after the action.
    pub fn one_step(name: &str) -> Processor {
        Processor::new(vec![(name.to_string(), 1)])
    }

    /// The JSON published on the progress channel.
    pub fn to_json(&self) -> String {
        format!("{{\"status\":\"{}\",\"progress\":{}}}", self.status, self.progress)
    }

    /// Set step `index`'s own progress (0-100) and recompute the total.
    pub fn set_progress_at_step(&mut self, index: usize, step_progress: i64) -> Result<(), String> {
        if !(0..=100).contains(&step_progress) {
            return Err(format!("Invalid step progress value: {step_progress}"));
        }
        let Some(&(_, weight)) = self.steps.get(index) else {
            return Err(format!("Invalid step index: {index}"));
        };
        let total: i64 = self.steps.iter().fold(0i64, |acc, (_, w)| acc.wrapping_add(w.wrapping_mul(100)));
        let done: i64 = self.steps[..index].iter().fold(0i64, |acc, (_, w)| acc.wrapping_add(w.wrapping_mul(100)));
        let current = done.wrapping_add(step_progress.wrapping_mul(weight));
        if total > 0 {
            self.progress = current.wrapping_mul(100) / total;
        }
        Ok(())
    }

    /// Change the weight of the step called `name`.
    pub fn set_step_weight(&mut self, name: &str, weight: i64) -> Result<(), String> {
        if weight < 0 {
            return Err(format!("Invalid step weight value: {weight}"));
        }
        match self.steps.iter_mut().find(|(n, _)| n == name) {
            Some(step) => {
                step.1 = weight;
                Ok(())
            }
            None => Err(format!("Step {name} not found")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(w: &[i64]) -> Processor {
        Processor::new(w.iter().enumerate().map(|(i, w)| (format!("s{i}"), *w)).collect())
    }

    #[test]
    fn readme_example() {
        let mut p = steps(&[1, 1, 1, 1, 1]);
        p.set_progress_at_step(2, 73).unwrap();
        assert_eq!(p.progress, 54);
        assert_eq!(p.to_json(), r#"{"status":"pending","progress":54}"#);
    }

    #[test]
    fn weighted_sequence_of_the_original_suite() {
        let mut p = steps(&[1, 1, 1, 1, 1]);
        p.set_step_weight("s0", 0).unwrap();
        p.set_step_weight("s1", 5).unwrap();
        p.set_step_weight("s2", 2).unwrap();
        p.set_step_weight("s4", 2).unwrap();
        assert!(p.set_step_weight("BAD", 7).is_err());
        assert!(p.set_progress_at_step(0, 999).is_err());
        let mut seen = Vec::new();
        for (i, v) in [(0, 100), (1, 25), (1, 50), (1, 75), (1, 99), (1, 100), (2, 100), (3, 100), (4, 100)] {
            p.set_progress_at_step(i, v).unwrap();
            seen.push(p.progress);
        }
        assert_eq!(seen, [0, 12, 25, 37, 49, 50, 70, 80, 100]);
    }
}
