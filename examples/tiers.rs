//! Multi-level checkpoints: a fast local tier and a durable remote one.
//!
//! Every checkpoint commits on the local tier (node-local NVMe in a real
//! job); every fourth is drained to the remote tier (an object store:
//! `ObjectStorage::from_env()?` with the `object-store` feature) on a
//! background thread, its manifest last, so the remote never holds a
//! checkpoint it cannot restore. Here a second directory stands for the
//! remote.
//!
//! The example then plays two failures: a process crash (the local tier
//! survives: the newest checkpoint comes back from it) and a lost node
//! (the local tier is wiped: the newest drained checkpoint comes back
//! from the remote, and the restore says the local tier was lost). Each
//! restart tells the cost model which class of failure it was, which an
//! adaptive policy uses to choose the drain ratio.
//!
//! Run it with `cargo run --release --example tiers`.

use ckpt::model::Event;
use ckpt::{Checkpointer, DrainEvent, FsStorage, Scheme};
use std::path::Path;

/// The job's checkpointer: the same configuration on every (re)start.
fn open(local: &Path, remote: &Path) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .tier("local", FsStorage::open(local)?)
        .tier("remote", FsStorage::open(remote)?)
        .keep_last(3)
        .tier_keep_last("remote", 2)
        .drain_every(4)
        .scheme(Scheme::Incremental)
        .build()
}

/// Runs steps `first..last` of a toy computation, resuming from `state`.
fn compute(ck: &mut Checkpointer, state: &mut Vec<u64>, first: u64, last: u64) -> ckpt::Result<()> {
    for step in first..last {
        ck.scope(step, state, |s| {
            let at = (step as usize * 7919) % s.len();
            s[at] = s[at].wrapping_mul(31).wrapping_add(step);
        })?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));

    let mut ck = open(&local, &remote)?;
    let drains = ck.subscribe_drains();
    let mut state: Vec<u64> = (0..1u64 << 18)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    compute(&mut ck, &mut state, 0, 30)?;
    // flush() waits for the queued drains (one attempt if the remote is down).
    ck.flush()?;
    for event in drains.try_iter() {
        if let DrainEvent::Drained {
            step,
            packs_copied,
            bytes_copied,
            took,
            ..
        } = event
        {
            println!("drained step {step}: {packs_copied} packs, {bytes_copied} bytes in {took:?}");
        }
    }

    // A process crash: the local tier survived.
    drop(ck);
    let mut ck = open(&local, &remote)?;
    print_restart(&mut ck);
    let restored = ck
        .restore_latest::<Vec<u64>>()?
        .expect("checkpoints were taken");
    let tier = restored
        .tier
        .as_ref()
        .expect("a checkpointer with tiers says which");
    println!(
        "process crash: step {} from tier {:?}",
        restored.step, tier.name
    );
    drop(ck);

    // A lost node: the local tier is gone.
    std::fs::remove_dir_all(&local)?;
    let mut ck = open(&local, &remote)?;
    print_restart(&mut ck);
    let restored = ck
        .restore_latest::<Vec<u64>>()?
        .expect("the remote holds checkpoints");
    let tier = restored
        .tier
        .as_ref()
        .expect("a checkpointer with tiers says which");
    println!(
        "node lost: step {} from tier {:?} (local tier lost: {})",
        restored.step, tier.name, tier.first_tier_lost
    );
    let mut state = restored.state;
    compute(&mut ck, &mut state, restored.step + 1, 40)?;
    println!("plan in force: {}", ck.plan());
    ck.finish()?;
    Ok(())
}

/// Prints the class of failure a new checkpointer found at start-up.
fn print_restart(ck: &mut Checkpointer) {
    for event in ck.subscribe().try_iter() {
        if let Event::Restart(restart) = event {
            println!("restart after a {:?} failure", restart.class);
        }
    }
}
