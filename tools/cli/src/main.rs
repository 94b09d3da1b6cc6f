//! `ckpt`: look inside a store of checkpoints, check it, keep it and copy
//! from it, without writing Rust. See `ckpt --help`.

mod cmd;
mod fail;
mod human;
mod store;
mod svg;

use clap::{Parser, Subcommand};
use fail::{Failure, exit};
use std::path::PathBuf;
use std::process::ExitCode;
use store::Location;

const EXAMPLES: &str = "\
Examples:
  ckpt ls ./ckpts                       what the store holds, newest last
  ckpt verify ./ckpts                   read every byte of the newest checkpoint
  ckpt verify ./ckpts --step 900        ... or of the one taken at step 900
  ckpt show ./ckpts 900                 segments and packs of step 900
  ckpt model ./ckpts                    what the cost model learnt
  ckpt gc ./ckpts --keep 3 --dry-run    what keeping 3 would delete
  ckpt cp ./ckpts s3://bucket/run-7     copy the newest checkpoint to S3
  ckpt report ./ckpts -o report.html    costs, decisions and failures over time
  ckpt ls s3://bucket/run-7 --json      the same listing, for scripts

Stores: a directory, or s3://BUCKET/PREFIX (a build with the `s3` feature;
endpoint and credentials from AWS_* and CKPT_S3_ENDPOINT, as ObjectStorage
reads them). Only gc and cp write, and they take the store's writer lock.

Exit status:
  0  success (verify: the checkpoint verifies)
  1  a checkpoint is damaged or missing (verify failed; no such step)
  2  bad usage: arguments, options, or a store that cannot be opened so
  3  a writer (a running checkpointer) holds the store: retry when it ends
  4  the store could not be read or written (access, network, disk)
  5  the store was written by a newer ckpt: upgrade this tool";

/// Look inside a store of ckpt checkpoints: list, verify, show, model,
/// report; and maintain it: gc, cp.
#[derive(Parser, Debug)]
#[command(name = "ckpt", version, after_help = EXAMPLES)]
struct Cli {
    /// Print JSON (one document on stdout) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
enum Command {
    /// One line per checkpoint: seq, step, scheme, sizes, compression, age;
    /// and a group's global commits.
    #[command(after_help = "Example:\n  ckpt ls ./ckpts\n  ckpt ls s3://bucket/run-7 --json")]
    Ls {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
    },
    /// Read and check every byte the newest (or chosen) checkpoint needs;
    /// exit 0 only if it verifies.
    #[command(
        after_help = "Example:\n  ckpt verify ./ckpts && echo intact\n  ckpt verify ./ckpts --step 900"
    )]
    Verify {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
        /// Verify the checkpoint taken at this step instead of the newest.
        #[arg(long)]
        step: Option<u64>,
    },
    /// A checkpoint's segments (kind, size, chunks, pages) and the packs
    /// they need.
    #[command(after_help = "Example:\n  ckpt show ./ckpts 900")]
    Show {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
        /// The step (its newest checkpoint, if taken more than once).
        step: u64,
    },
    /// What the cost model learnt: costs with confidence intervals per
    /// plan, failure rates, the plan in force.
    #[command(after_help = "Example:\n  ckpt model ./ckpts")]
    Model {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
    },
    /// Retention by hand: keep the newest N checkpoints, delete the rest
    /// and every pack they alone need. Takes the writer lock.
    #[command(
        after_help = "Example:\n  ckpt gc ./ckpts --keep 3 --dry-run\n  ckpt gc ./ckpts --keep 3"
    )]
    Gc {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
        /// How many of the newest checkpoints that verify to keep (>= 1).
        #[arg(long)]
        keep: usize,
        /// Show what would be deleted; delete nothing, take no lock.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy a checkpoint, with every pack it needs, to another store, and
    /// verify the copy. Takes DST's writer lock.
    #[command(
        after_help = "Example:\n  ckpt cp ./ckpts s3://bucket/run-7\n  ckpt cp ./ckpts /mnt/backup --step 900"
    )]
    Cp {
        /// The store to copy from.
        #[arg(value_parser = Location::parse)]
        src: Location,
        /// The store to copy into (a directory is created if missing).
        #[arg(value_parser = Location::parse)]
        dst: Location,
        /// Copy the checkpoint taken at this step instead of the newest.
        #[arg(long)]
        step: Option<u64>,
    },
    /// Write one self-contained HTML page (inline SVG, no network) of the
    /// store's journal and cost model: checkpoint cost per scheme, bytes
    /// written, the interval in force, failures, restores and every policy
    /// decision over time, and the fitted cost curves.
    #[command(
        after_help = "Example:\n  ckpt report ./ckpts -o report.html && xdg-open report.html"
    )]
    Report {
        /// The store: a directory or s3://BUCKET/PREFIX.
        #[arg(value_parser = Location::parse)]
        store: Location,
        /// The HTML file to write.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// An MTBF in seconds to price the fitted curves with, in place of
        /// the one the writer was configured with (stored with its model).
        #[arg(long, value_name = "SECONDS")]
        mtbf: Option<f64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let outcome = match cli.command {
        Command::Ls { store } => cmd::ls::run(&store, json),
        Command::Verify { store, step } => cmd::verify::run(&store, step, json),
        Command::Show { store, step } => cmd::show::run(&store, step, json),
        Command::Model { store } => cmd::model::run(&store, json),
        Command::Gc {
            store,
            keep,
            dry_run,
        } => cmd::gc::run(&store, keep, dry_run, json),
        Command::Cp { src, dst, step } => cmd::cp::run(&src, &dst, step, json),
        Command::Report {
            store,
            output,
            mtbf,
        } => cmd::report::run(&store, &output, mtbf, json),
    };
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure { message, code }) => {
            eprintln!("ckpt: {message}");
            ExitCode::from(code)
        }
    }
}
