//! The bond's TOML file: any text parses or gives an error, never a panic;
//! a configuration that parses writes back to a file that parses to the
//! same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_core::config::BondConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = BondConfig::from_toml_str(text) else { return };
    let back = BondConfig::from_toml_str(&cfg.to_toml()).expect("what was written reads back");
    assert_eq!(back, cfg, "to_toml then from_toml_str is the identity");
});
