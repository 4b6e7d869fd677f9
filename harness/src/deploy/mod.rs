//! `stackguard deploy`, `verify` and `down`: the reference stack of `deploy/stack` on this
//! machine (`local`: Debian packages) or on a Kubernetes cluster (`kube`).

pub mod kube;
pub mod local;
pub mod secrets;
pub mod stack;
pub mod verify;

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Progress output: spinners and bars on a terminal, plain lines otherwise (CI logs).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    interactive: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            interactive: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress {
    /// Progress of a background helper: plain lines only.
    pub fn quiet() -> Self {
        Progress { interactive: false }
    }

    /// A result line on standard output.
    pub fn line(&self, s: &str) {
        println!("{s}");
    }

    /// A spinner for a wait of unknown length (a plain line when not on a terminal).
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        if !self.interactive {
            eprintln!("{msg} ...");
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// A bar counting `len` steps.
    pub fn bar(&self, len: u64, msg: &str) -> ProgressBar {
        if !self.interactive {
            eprintln!("{msg} ...");
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    }
}
