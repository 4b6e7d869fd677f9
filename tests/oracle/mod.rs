//! Shared driver of the differential tests that check our readers against the real programs
//! (`oracle_sql.rs`, `oracle_redis.rs`, `oracle_shell.rs`).
//!
//! Cases are generated with proptest strategies from a fixed seed, one independent random
//! stream per case, so any case can be replayed alone:
//!
//! - `STACKGUARD_ORACLE_SEED=<u64>`: the seed (printed by every run; default fixed);
//! - `STACKGUARD_ORACLE_CASES=<n>`: how many cases (default: each oracle's own);
//! - `STACKGUARD_ORACLE_CASE=<i>`: run only case `i` of that seed (and print it).
//!
//! Every case runs; the disagreements are collected, the first one is shrunk to a smaller
//! input that still disagrees, and the test fails listing them all.

#![allow(dead_code)]

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::fmt::Debug;
use std::time::Instant;

pub const DEFAULT_SEED: u64 = 6_523_265_788_958;

/// How a run is configured: from the environment, with the oracle's default case count.
pub struct Run {
    pub name: &'static str,
    pub seed: u64,
    pub cases: usize,
    pub only: Option<usize>,
}

impl Run {
    pub fn from_env(name: &'static str, default_cases: usize) -> Run {
        let var = |n: &str| {
            std::env::var(n)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Run {
            name,
            seed: var("STACKGUARD_ORACLE_SEED").unwrap_or(DEFAULT_SEED),
            cases: var("STACKGUARD_ORACLE_CASES").map_or(default_cases, |c| c as usize),
            only: var("STACKGUARD_ORACLE_CASE").map(|c| c as usize),
        }
    }

    /// The random stream of case `i`.
    fn runner(&self, i: usize) -> TestRunner {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        key[16..24].copy_from_slice(&0x6f72_6163_6c65u64.to_le_bytes());
        TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &key),
        )
    }

    /// Generate and check every case. `check` returns `Err(disagreement)`; `show` renders a
    /// case for the report (it must not contain secret values).
    pub fn check<S, F, D>(&self, strategy: S, mut check: F, show: D) -> Summary
    where
        S: Strategy,
        S::Value: Debug,
        F: FnMut(&S::Value) -> Result<(), String>,
        D: Fn(&S::Value) -> String,
    {
        let start = Instant::now();
        println!(
            "oracle {}: seed {} (STACKGUARD_ORACLE_SEED), {} cases (STACKGUARD_ORACLE_CASES)",
            self.name, self.seed, self.cases
        );
        let mut failures: Vec<(usize, String, String)> = Vec::new();
        let mut shrunk: Option<(String, String)> = None;
        let mut ran = 0;
        // A case named by STACKGUARD_ORACLE_CASE runs whatever the number of cases.
        let range = self.only.map_or(0..self.cases, |o| o..o + 1);
        for i in range {
            let mut runner = self.runner(i);
            let mut tree = match strategy.new_tree(&mut runner) {
                Ok(t) => t,
                Err(e) => panic!("case {i}: could not generate: {e}"),
            };
            let value = tree.current();
            if self.only.is_some() {
                println!("case {i}:\n{}", show(&value));
            }
            ran += 1;
            let t = Instant::now();
            let result = check(&value);
            if t.elapsed().as_secs_f64() > 3.0 {
                println!("case {i}: slow, {:.1} s", t.elapsed().as_secs_f64());
            }
            if let Err(why) = result {
                println!("case {i}: DISAGREES: {why}");
                if shrunk.is_none() {
                    shrunk = Some(shrink(&mut tree, &mut check, &show, why.clone()));
                }
                failures.push((i, show(&value), why));
            }
        }
        let summary = Summary {
            cases: ran,
            disagreements: failures.len(),
            seconds: start.elapsed().as_secs_f64(),
        };
        println!(
            "oracle {}: {} cases, {} disagreements, {:.1} s",
            self.name, summary.cases, summary.disagreements, summary.seconds
        );
        if !failures.is_empty() {
            let mut report = String::new();
            for (i, case, why) in failures.iter().take(5) {
                report.push_str(&format!(
                    "\n--- case {i} (replay: STACKGUARD_ORACLE_SEED={} STACKGUARD_ORACLE_CASE={i})\n{case}\n=> {why}\n",
                    self.seed
                ));
            }
            if let Some((case, why)) = shrunk {
                report.push_str(&format!(
                    "\n--- smallest disagreeing input found\n{case}\n=> {why}\n"
                ));
            }
            panic!(
                "oracle {}: {} of {} cases disagree with the real program:{report}",
                self.name,
                failures.len(),
                ran
            );
        }
        summary
    }
}

/// Simplify a failing case while it keeps failing (at most a few dozen evaluations: each one
/// runs the real program).
fn shrink<T, F, D>(tree: &mut T, check: &mut F, show: &D, mut why: String) -> (String, String)
where
    T: ValueTree,
    F: FnMut(&T::Value) -> Result<(), String>,
    D: Fn(&T::Value) -> String,
{
    let mut best = show(&tree.current());
    for _ in 0..60 {
        if !tree.simplify() {
            break;
        }
        match check(&tree.current()) {
            Err(w) => {
                why = w;
                best = show(&tree.current());
            }
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (best, why)
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub cases: usize,
    pub disagreements: usize,
    pub seconds: f64,
}

/// Replace every secret in `text` by `<secret>` (cases are printed; their passwords are not).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "<secret>");
    }
    out
}

/// A scratch directory under the system temp dir, removed when dropped (also when a test
/// panics).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("stackguard-oracle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
