//! `stackguard bump VERSION`: set the release version everywhere (maintainers; `make bump` also
//! rebuilds stackguard and regenerates the derived files).

use anyhow::Result;
use stackguard::generate::versions;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The new version, e.g. 0.2.0.
    pub version: String,
    /// The release date in CHANGELOG.md (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// The repository root.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

pub fn main(args: Args) -> Result<i32> {
    let date = args.date.unwrap_or_else(versions::today);
    for f in versions::bump(&args.root, &args.version, &date)? {
        println!("updated {f}");
    }
    println!(
        "version {} set; now rebuild stackguard and run `stackguard generate` (`make bump` does both)",
        args.version
    );
    Ok(0)
}
