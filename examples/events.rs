//! Runs a bond from a config file and prints its events as they come:
//! links, the active slave, the transmitting slaves (802.3ad aggregation),
//! the carrier. The bond's host side is `bond0`, as with `xbond run`.
//!
//! ```text
//! events CONFIG.toml     (as root; stops on SIGINT/SIGTERM)
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use xbond::runtime::{Runtime, RuntimeOptions};
use xbond_core::config::BondConfig;

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: events CONFIG.toml")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let cfg = BondConfig::from_toml_str(&text).with_context(|| format!("in {path}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let rt = Runtime::start(cfg, RuntimeOptions::default())?;
    while !stop.load(Ordering::Relaxed) && !rt.is_finished() {
        if let Some(ev) = rt.events().next_timeout(Duration::from_millis(200)) {
            println!("{}: {ev}", rt.name());
        }
    }
    rt.stop()
}
