//! Checkpoints a small simulation to S3 or an S3-compatible store, then
//! restores it through a fresh connection, as a restarted job would.
//!
//! ```sh
//! eval "$(scripts/s3-server start)"        # or point AWS_* / CKPT_S3_* at your store
//! cargo run --release --example object_store
//! ```
//!
//! Configuration comes from the environment (`ObjectStorage::from_env`):
//! the standard `AWS_*` variables plus `CKPT_S3_ENDPOINT`, `CKPT_S3_BUCKET`
//! and `CKPT_S3_PREFIX`.

use ckpt::storage::ObjectStorageBuilder;
use ckpt::{Checkpointer, Scheme, Storage};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Sim {
    step: u64,
    field: Vec<f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("CKPT_S3_BUCKET").is_none() {
        eprintln!(
            "set CKPT_S3_BUCKET (and AWS_* or CKPT_S3_ENDPOINT), e.g. eval \"$(scripts/s3-server start)\""
        );
        return Ok(());
    }
    let prefix = format!("examples/object-store-{}", std::process::id());
    // `allow_http` only because the local test server speaks plain HTTP.
    let open = || {
        ObjectStorageBuilder::from_env()
            .prefix(prefix.as_str())
            .allow_http(true)
            .build()
    };

    let mut ck = Checkpointer::builder()
        .storage(open()?)
        .scheme(Scheme::Incremental)
        .every_steps(10)
        .keep_last(2)
        .build()?;
    let mut sim = Sim {
        step: 0,
        field: vec![0.0; 1 << 20],
    };
    while sim.step < 100 {
        ck.scope(sim.step, &mut sim, |sim| {
            let at = sim.step as usize * 997 % sim.field.len();
            sim.field[at] += 1.0;
            sim.step += 1;
        })?;
    }
    ck.finish()?;

    // A restarted job: a new connection, the newest checkpoint.
    let mut ck = Checkpointer::builder().storage(open()?).build()?;
    let restored = ck.restore_latest::<Sim>()?.ok_or("no checkpoint found")?;
    println!(
        "restored step {} from {} ({} checkpoints kept)",
        restored.state.step,
        prefix,
        ck.list()?.checkpoints.len()
    );
    assert_eq!(restored.state, sim);
    ck.finish()?;

    let store = open()?;
    for key in store.list("")? {
        store.delete(&key)?;
    }
    Ok(())
}
