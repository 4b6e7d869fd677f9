//! `stackguard generate`: write (or `--check`) the files derived from each policy's settings
//! definition, its metadata and Cargo's version. See `stackguard::generate`.

use anyhow::{Result, bail};
use stackguard::generate::{self, versions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Write nothing: list the stale files and version mismatches, exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
    /// The repository root.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

pub fn main(args: Args) -> Result<i32> {
    if !args.root.join("policies").is_dir() || !args.root.join("Cargo.toml").is_file() {
        bail!(
            "{}: not the stackguard repository root (run from the clone, or pass --root)",
            args.root.display()
        );
    }
    let outputs = generate::outputs(&args.root)?;
    let problems = versions::check(&args.root)?;
    let files = if args.check {
        generate::stale(&args.root, &outputs)
    } else {
        generate::write(&args.root, &outputs)?
    };
    for f in &files {
        if args.check {
            eprintln!("stale: {f} (run `make generate`)");
        } else {
            println!("wrote {f}");
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if args.check && files.is_empty() && problems.is_empty() {
        println!(
            "✓ {} generated files up to date, version {}",
            outputs.len(),
            generate::VERSION
        );
    }
    Ok(i32::from(
        (args.check && !files.is_empty()) || !problems.is_empty(),
    ))
}
