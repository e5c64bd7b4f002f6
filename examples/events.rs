//! Runs a bond from a config file and prints its events as they come:
//! links, the active slave, the transmitting slaves (802.3ad aggregation),
//! the carrier. The bond's host side is `bond0`, as with `xbond run`, or
//! with `--upper IFACE` an existing interface: an L2 appliance that joins
//! the bond to IFACE, frames crossing in both directions.
//!
//! ```text
//! events CONFIG.toml [--upper IFACE]     (as root; stops on SIGINT/SIGTERM)
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use xbond::runtime::{Runtime, RuntimeOptions, Upper};
use xbond_core::config::BondConfig;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: events CONFIG.toml [--upper IFACE]";
    let path = args.first().context(usage)?.clone();
    let upper = match args.get(1).map(String::as_str) {
        None => Upper::VethPair,
        Some("--upper") => Upper::Interface(args.get(2).context(usage)?.clone()),
        Some(other) => anyhow::bail!("{other:?}: {usage}"),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let cfg = BondConfig::from_toml_str(&text).with_context(|| format!("in {path}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = RuntimeOptions {
        upper,
        ..RuntimeOptions::default()
    };
    let rt = Runtime::start(cfg, opts)?;
    while !stop.load(Ordering::Relaxed) && !rt.is_finished() {
        if let Some(ev) = rt.events().next_timeout(Duration::from_millis(200)) {
            println!("{}: {ev}", rt.name());
        }
    }
    rt.stop()
}
